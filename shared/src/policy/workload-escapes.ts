/**
 * Why a pod — or the pods a workload's template would start — would run
 * outside the guard: opted out of injection, on the node's namespaces, with
 * powers that reach the sidecar's network stack or processes, holding a token
 * of its own, or with Secret values where the sidecar cannot mask them. Pure:
 * a list of reasons over the object as it will be stored, each naming the
 * field and what to change.
 */
import { isObject as isObj } from '../check.ts';
import type { DecisionCause } from './types.ts';

export type Escape = DecisionCause;

type Obj = Record<string, unknown>;

export const INJECT_LABEL = 'chaperone.dev/inject';
export const INJECT_ENABLED = 'enabled';
export const INJECTED_LABEL = 'chaperone.dev/injected';
export const STATUS_ANNOTATION = 'chaperone.dev/status';
export const CHAPERONE_PREFIX = 'chaperone.dev/';
/** The injector's container in every guarded pod. */
export const SIDECAR_CONTAINER = 'chaperone-sidecar';
/** The injector names its volumes `chaperone-*` (token, agent service-account files, spool, policy, databases). */
export const RESERVED_VOLUME_PREFIX = 'chaperone-';
/** Namespaces the injector never serves, whatever their labels say. */
export const SYSTEM_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

/**
 * Where each built-in kind keeps its pod template, by `group/resource`
 * (core kinds have an empty group). An empty path: the object is the pod.
 * `extensions` is the pre-1.16 home of the apps kinds.
 */
const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  '/pods': [],
  '/replicationcontrollers': ['spec', 'template'],
  '/podtemplates': ['template'],
  'apps/deployments': ['spec', 'template'],
  'apps/replicasets': ['spec', 'template'],
  'apps/statefulsets': ['spec', 'template'],
  'apps/daemonsets': ['spec', 'template'],
  'extensions/deployments': ['spec', 'template'],
  'extensions/replicasets': ['spec', 'template'],
  'extensions/daemonsets': ['spec', 'template'],
  'batch/jobs': ['spec', 'template'],
  'batch/cronjobs': ['spec', 'jobTemplate', 'spec', 'template'],
};

/**
 * Added capabilities that reach the pod's shared network stack (NET_ADMIN can
 * rewrite the packet filter strict capture relies on; NET_RAW forges and reads
 * raw packets), other processes (SYS_PTRACE), or the node (SYS_ADMIN,
 * SYS_MODULE, SYS_RAWIO, DAC_READ_SEARCH's open_by_handle_at, BPF, PERFMON).
 */
const DANGEROUS_CAPABILITIES = new Set([
  'ALL',
  'NET_ADMIN',
  'NET_RAW',
  'SYS_ADMIN',
  'SYS_PTRACE',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_BOOT',
  'DAC_READ_SEARCH',
  'BPF',
  'PERFMON',
  'SYSLOG',
]);

/**
 * Added capabilities that reach the node's files or other processes (every
 * pod's token on the node among them): the node-reaching part of
 * DANGEROUS_CAPABILITIES.
 */
export const NODE_REACHING_CAPABILITIES: ReadonlySet<string> = new Set([
  'ALL',
  'SYS_ADMIN',
  'SYS_PTRACE',
  'SYS_MODULE',
  'SYS_RAWIO',
  'DAC_READ_SEARCH',
  'BPF',
  'PERFMON',
]);

/** CSI drivers that put secret values into files. */
const SECRET_CSI_DRIVERS = new Set(['secrets-store.csi.k8s.io']);

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** The template path of a built-in kind with a pod template (pods included), or undefined. */
export function podTemplatePath(apiGroup: string, resource: string): readonly string[] | undefined {
  return TEMPLATE_PATHS[`${apiGroup}/${resource}`];
}

export interface PodTemplate {
  readonly metadata: Obj;
  readonly spec: Obj;
  /** Dotted path of the template in its object (`spec.template`), empty for a pod. */
  readonly path: string;
  /** Dotted path of the spec, when it is not `<path>.spec`. */
  readonly specPath?: string;
}

/** The pod template inside `obj` (the object itself for pods); an absent template reads as empty. */
export function podTemplateOf(apiGroup: string, resource: string, obj: unknown): PodTemplate | undefined {
  const path = podTemplatePath(apiGroup, resource);
  if (!path) return undefined;
  let t: unknown = obj;
  for (const key of path) t = isObj(t) ? t[key] : undefined;
  return {
    metadata: isObj(t) && isObj(t.metadata) ? t.metadata : {},
    spec: isObj(t) && isObj(t.spec) ? t.spec : {},
    path: path.join('.'),
  };
}

function at(base: string, field: string): string {
  return base === '' ? field : `${base}.${field}`;
}

function capabilityName(c: string): string {
  const up = c.trim().toUpperCase();
  return up.startsWith('CAP_') ? up.slice(4) : up;
}

/**
 * Names the injector gives its own container and volumes: a pod that already
 * has them would have the injector's additions merged with, or dropped in
 * favour of, what its author wrote there (a sidecar of the author's choosing,
 * a token volume mounted where the author likes).
 */
function reservedNames(c: Obj, name: string, where: string, sidecar: string, out: Escape[]): void {
  if (name === sidecar) {
    out.push({
      rule: 'chaperone-no-reserved-names',
      field: `${where}.name`,
      message: `a container named ${sidecar} is the injector's sidecar, not a pod author's: rename it`,
    });
  }
  for (const list of ['volumeMounts', 'volumeDevices'] as const) {
    arr(c[list]).forEach((m, i) => {
      const mount = isObj(m) ? str(m.name) : undefined;
      if (mount?.startsWith(RESERVED_VOLUME_PREFIX)) {
        out.push({
          rule: 'chaperone-no-reserved-names',
          field: `${where}.${list}[${i}].name`,
          message: `container ${name} uses volume ${mount}: ${RESERVED_VOLUME_PREFIX}* volumes are the injector's (they hold the sidecar's token and files): use another volume name`,
        });
      }
    });
  }
}

function containerEscapes(c: Obj, where: string, sidecar: string, out: Escape[]): void {
  const name = str(c.name) ?? '?';
  reservedNames(c, name, where, sidecar, out);
  const sc = isObj(c.securityContext) ? c.securityContext : {};
  if (sc.privileged === true) {
    out.push({
      rule: 'chaperone-no-privileged',
      field: `${where}.securityContext.privileged`,
      message: `container ${name} is privileged and could reach the node and the sidecar: remove privileged: true`,
    });
  }
  const caps = isObj(sc.capabilities) ? arr(sc.capabilities.add) : [];
  const bad = caps.filter(
    (x): x is string => typeof x === 'string' && DANGEROUS_CAPABILITIES.has(capabilityName(x)),
  );
  if (bad.length > 0) {
    out.push({
      rule: 'chaperone-no-privileged',
      field: `${where}.securityContext.capabilities.add`,
      message: `container ${name} adds ${bad.join(', ')}, which reach the pod's network stack, other processes or the node: remove them`,
    });
  }
  if (sc.allowPrivilegeEscalation === true) {
    out.push({
      rule: 'chaperone-no-privileged',
      field: `${where}.securityContext.allowPrivilegeEscalation`,
      message: `container ${name} lets its processes gain privileges (setuid, file capabilities), e.g. to take the sidecar's user id: remove allowPrivilegeEscalation: true`,
    });
  }
  if (isObj(sc.windowsOptions) && sc.windowsOptions.hostProcess === true) {
    out.push({
      rule: 'chaperone-no-host-namespaces',
      field: `${where}.securityContext.windowsOptions.hostProcess`,
      message: `container ${name} would run as a process on the node: remove hostProcess: true`,
    });
  }
  arr(c.env).forEach((e, i) => {
    if (!isObj(e) || !isObj(e.valueFrom) || !isObj(e.valueFrom.secretKeyRef)) return;
    const ref = e.valueFrom.secretKeyRef;
    out.push({
      rule: 'chaperone-no-unmasked-secrets',
      field: `${where}.env[${i}].valueFrom.secretKeyRef`,
      message: `container ${name} would hold key ${str(ref.key) ?? '?'} of Secret ${str(ref.name) ?? '?'} in its environment, where the guard cannot mask it: remove the reference (read the Secret through the API, masked, or declare a database with chaperone.dev/databases so only the sidecar holds it)`,
    });
  });
  arr(c.envFrom).forEach((e, i) => {
    if (!isObj(e) || !isObj(e.secretRef)) return;
    out.push({
      rule: 'chaperone-no-unmasked-secrets',
      field: `${where}.envFrom[${i}].secretRef`,
      message: `container ${name} would hold every value of Secret ${str(e.secretRef.name) ?? '?'} in its environment, where the guard cannot mask it: remove the secretRef`,
    });
  });
}

function volumeEscapes(v: Obj, where: string, out: Escape[]): void {
  const name = str(v.name) ?? '?';
  if (name.startsWith(RESERVED_VOLUME_PREFIX)) {
    out.push({
      rule: 'chaperone-no-reserved-names',
      field: `${where}.name`,
      message: `volume ${name}: ${RESERVED_VOLUME_PREFIX}* volumes are the injector's (they hold the sidecar's token and files): use another volume name`,
    });
  }
  if (v.hostPath !== undefined && v.hostPath !== null) {
    out.push({
      rule: 'chaperone-no-host-path',
      field: `${where}.hostPath`,
      message: `volume ${name} mounts a directory of the node (its kubelet and other pods' credentials live there): use an emptyDir, a ConfigMap or a PersistentVolumeClaim instead`,
    });
  }
  if (isObj(v.secret)) {
    out.push({
      rule: 'chaperone-no-unmasked-secrets',
      field: `${where}.secret`,
      message: `volume ${name} would put Secret ${str(v.secret.secretName) ?? '?'} into files the guard cannot mask: remove the volume (read the Secret through the API, masked)`,
    });
  }
  if (isObj(v.csi) && SECRET_CSI_DRIVERS.has(str(v.csi.driver) ?? '')) {
    out.push({
      rule: 'chaperone-no-unmasked-secrets',
      field: `${where}.csi`,
      message: `volume ${name} uses the ${str(v.csi.driver)} driver, which puts secret values into files the guard cannot mask: remove the volume`,
    });
  }
  if (isObj(v.projected)) {
    arr(v.projected.sources).forEach((s, i) => {
      if (!isObj(s)) return;
      if (isObj(s.serviceAccountToken)) {
        out.push({
          rule: 'chaperone-no-own-token',
          field: `${where}.projected.sources[${i}].serviceAccountToken`,
          message: `volume ${name} would give the pod a service-account token of its own, a credential outside the guard: remove the serviceAccountToken source (the injector gives the sidecar the pod's token)`,
        });
      }
      if (isObj(s.secret)) {
        out.push({
          rule: 'chaperone-no-unmasked-secrets',
          field: `${where}.projected.sources[${i}].secret`,
          message: `volume ${name} would put Secret ${str(s.secret.name) ?? '?'} into files the guard cannot mask: remove the secret source`,
        });
      }
    });
  }
}

function optOutEscapes(meta: Obj, where: string, out: Escape[]): void {
  const labels = isObj(meta.labels) ? meta.labels : {};
  const annotations = isObj(meta.annotations) ? meta.annotations : {};
  if (labels[INJECT_LABEL] !== undefined) {
    out.push({
      rule: 'chaperone-no-opt-out',
      field: `${at(where, 'metadata.labels')}[${INJECT_LABEL}]`,
      message: `the label ${INJECT_LABEL} on a pod only serves to opt it out of the guard: remove it`,
    });
  }
  const ann = str(annotations[INJECT_LABEL]);
  if (ann !== undefined && ann.trim().toLowerCase() === 'false') {
    out.push({
      rule: 'chaperone-no-opt-out',
      field: `${at(where, 'metadata.annotations')}[${INJECT_LABEL}]`,
      message: `the annotation ${INJECT_LABEL}: "false" opts the pod out of the guard: remove it`,
    });
  }
  if (labels[INJECTED_LABEL] !== undefined) {
    out.push({
      rule: 'chaperone-no-forged-injection-marks',
      field: `${at(where, 'metadata.labels')}[${INJECTED_LABEL}]`,
      message: `the label ${INJECTED_LABEL} is set by the injector, not by a pod's author: remove it`,
    });
  }
  if (annotations[STATUS_ANNOTATION] !== undefined) {
    out.push({
      rule: 'chaperone-no-forged-injection-marks',
      field: `${at(where, 'metadata.annotations')}[${STATUS_ANNOTATION}]`,
      message: `the annotation ${STATUS_ANNOTATION} is written by the injector, not by a pod's author: remove it`,
    });
  }
}

/**
 * Every reason the pods of `t` would run outside the guard (empty: none
 * found). `sidecar` is the name of the injector's container.
 */
export function podEscapes(t: PodTemplate, sidecar: string = SIDECAR_CONTAINER): Escape[] {
  const out: Escape[] = [];
  optOutEscapes(t.metadata, t.path, out);
  const spec = t.spec;
  const specPath = t.specPath ?? at(t.path, 'spec');
  for (const [field, what] of [
    ['hostNetwork', "the node's network (host-network pods cannot be guarded)"],
    ['hostPID', "the node's processes"],
    ['hostIPC', "the node's shared memory"],
  ] as const) {
    if (spec[field] === true) {
      out.push({
        rule: 'chaperone-no-host-namespaces',
        field: at(specPath, field),
        message: `${field}: true would give the pod ${what}: remove it`,
      });
    }
  }
  if (spec.shareProcessNamespace === true) {
    out.push({
      rule: 'chaperone-no-shared-process-namespace',
      field: at(specPath, 'shareProcessNamespace'),
      message:
        "shareProcessNamespace: true would let the pod's containers read the sidecar's memory and files (its token) through /proc: remove it",
    });
  }
  const psc = isObj(spec.securityContext) ? spec.securityContext : {};
  if (isObj(psc.windowsOptions) && psc.windowsOptions.hostProcess === true) {
    out.push({
      rule: 'chaperone-no-host-namespaces',
      field: at(specPath, 'securityContext.windowsOptions.hostProcess'),
      message: 'hostProcess: true would run the pod as processes on the node: remove it',
    });
  }
  for (const list of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    arr(spec[list]).forEach((c, i) => {
      if (isObj(c)) containerEscapes(c, `${at(specPath, list)}[${i}]`, sidecar, out);
    });
  }
  arr(spec.volumes).forEach((v, i) => {
    if (isObj(v)) volumeEscapes(v, `${at(specPath, 'volumes')}[${i}]`, out);
  });
  return out;
}
