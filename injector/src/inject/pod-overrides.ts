/**
 * Per-pod overrides: `chaperone.dev/*` annotations, validated. A bad value
 * never falls back to a default: the pod is rejected with a message naming
 * the annotation. Unknown `chaperone.dev/*` annotations are rejected too
 * (with a suggestion), since a typo would otherwise be ignored silently.
 */
import { didYouMean } from '@chaperone/shared';
import type { Pod } from '../k8s-types.ts';
import { ANNOTATION_PREFIX, INJECT_LABEL, OPT_OUT_VALUE, SIDECAR_NAME, STATUS_ANNOTATION } from '../names.ts';
import {
  type InjectionConfig,
  SIDECAR_LOG_LEVELS,
  SIDECAR_MODES,
  type SidecarMode,
  type SidecarResources,
} from './injection-config.ts';
import { InjectionRejected } from './injection-error.ts';
import { canonicalQuantity } from './quantity.ts';

export const OVERRIDE_ANNOTATIONS = {
  image: 'chaperone.dev/image',
  logLevel: 'chaperone.dev/log-level',
  kubePort: 'chaperone.dev/kube-port',
  metricsPort: 'chaperone.dev/metrics-port',
  mode: 'chaperone.dev/sidecar-mode',
  cpuRequest: 'chaperone.dev/cpu-request',
  memoryRequest: 'chaperone.dev/memory-request',
  cpuLimit: 'chaperone.dev/cpu-limit',
  memoryLimit: 'chaperone.dev/memory-limit',
  databases: 'chaperone.dev/databases',
} as const;

/** Every `chaperone.dev/*` pod annotation the injector understands. */
export const KNOWN_ANNOTATIONS: readonly string[] = [
  INJECT_LABEL,
  STATUS_ANNOTATION,
  ...Object.values(OVERRIDE_ANNOTATIONS),
];

export interface DatabaseBinding {
  /** Logical name, a DNS label: `orders`. */
  readonly name: string;
  /** Secret with the real credentials, mounted into the sidecar only. */
  readonly secretName: string;
  /** Local port the sidecar listens on for this database. */
  readonly port: number;
  /** Agents' variable holding this database's URL (`env=`; `DATABASE_URL` for the first by default). */
  readonly urlEnv?: string;
}

/** The URL variable of the first database when no entry names one. */
export const DEFAULT_DATABASE_URL_ENV = 'DATABASE_URL';

export interface PodSettings {
  readonly image: string;
  readonly logLevel: string;
  readonly kubePort: number;
  readonly metricsPort: number;
  readonly mode: SidecarMode;
  readonly resources: SidecarResources;
  readonly databases: readonly DatabaseBinding[];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// A container image reference: [registry[:port]/]path[:tag][@digest], lower-case path components.
const IMAGE =
  /^([a-zA-Z0-9.-]+(:\d+)?\/)?[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

function port(annotation: string, raw: string): number {
  if (!/^\d{1,5}$/.test(raw))
    throw new InjectionRejected(annotation, `"${raw}" is not a port number (1-65535)`);
  const n = Number(raw);
  if (n < 1 || n > 65535) throw new InjectionRejected(annotation, `${n} is not a port number (1-65535)`);
  return n;
}

function quantity(annotation: string, raw: string): string {
  try {
    return canonicalQuantity(raw);
  } catch (err) {
    throw new InjectionRejected(annotation, (err as Error).message);
  }
}

/** The annotation's value when it is one of `allowed`, else rejected; `fallback` when absent. */
function oneOf<T extends string>(
  annotation: string,
  raw: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new InjectionRejected(
      annotation,
      `"${raw}" must be one of ${allowed.join(', ')}${didYouMean(raw, allowed)}`,
    );
  }
  return raw as T;
}

// An environment variable name a shell can use.
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the injector sets itself, or that libpq reads (a URL there would change how clients connect). */
const RESERVED_ENV = /^(PG|KUBERNETES_|CHAPERONE_)/;
const DATABASE_OPTIONS = ['env'] as const;

/** `;env=VAR` after a database's `name=secretName`: the variable that gets its URL. */
function parseDatabaseOptions(
  name: string,
  entry: string,
  options: readonly string[],
  taken: readonly string[],
): string | undefined {
  const a = OVERRIDE_ANNOTATIONS.databases;
  let urlEnv: string | undefined;
  for (const option of options) {
    if (option === '') continue;
    const eq = option.indexOf('=');
    const key = (eq === -1 ? option : option.slice(0, eq)).trim();
    const value = eq === -1 ? '' : option.slice(eq + 1).trim();
    if (key !== 'env') {
      throw new InjectionRejected(
        a,
        `unknown option "${key}" in "${entry}"${didYouMean(key, DATABASE_OPTIONS)}; known: env (e.g. orders=orders-db-credentials;env=ORDERS_URL)`,
      );
    }
    if (urlEnv !== undefined) throw new InjectionRejected(a, `"${entry}" gives env twice`);
    if (!ENV_NAME.test(value)) {
      throw new InjectionRejected(
        a,
        `env "${value}" in "${entry}" is not an environment variable name (letters, digits and _, not starting with a digit)`,
      );
    }
    if (RESERVED_ENV.test(value)) {
      throw new InjectionRejected(
        a,
        `env ${value} in "${entry}" is reserved: the injector sets PG*, KUBERNETES_* and CHAPERONE_* variables itself; pick another name, such as ${name.toUpperCase().replace(/-/g, '_')}_URL`,
      );
    }
    if (taken.includes(value)) throw new InjectionRejected(a, `env ${value} is given to two databases`);
    urlEnv = value;
  }
  return urlEnv;
}

function parseDatabases(raw: string, firstPort: number): DatabaseBinding[] {
  const a = OVERRIDE_ANNOTATIONS.databases;
  const out: DatabaseBinding[] = [];
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (entries.length === 0)
    throw new InjectionRejected(a, 'is empty; expected name=secretName[;env=VAR][,name=secretName...]');
  for (const entry of entries) {
    const [binding = '', ...options] = entry.split(';').map((s) => s.trim());
    const eq = binding.indexOf('=');
    if (eq <= 0 || eq === binding.length - 1) {
      throw new InjectionRejected(
        a,
        `"${binding}" is not name=secretName (example: orders=orders-db-credentials)`,
      );
    }
    const name = binding.slice(0, eq).trim();
    const secretName = binding.slice(eq + 1).trim();
    if (!DNS_LABEL.test(name) || name.length > 40) {
      throw new InjectionRejected(
        a,
        `database name "${name}" must be a lower-case DNS label of at most 40 characters`,
      );
    }
    if (!DNS_SUBDOMAIN.test(secretName) || secretName.length > 253) {
      throw new InjectionRejected(a, `"${secretName}" is not a valid Secret name`);
    }
    if (out.some((d) => d.name === name))
      throw new InjectionRejected(a, `database "${name}" is declared twice`);
    const p = firstPort + out.length;
    if (p > 65535) throw new InjectionRejected(a, 'too many databases for the configured first port');
    const urlEnv = parseDatabaseOptions(
      name,
      entry,
      options,
      out.flatMap((d) => (d.urlEnv ? [d.urlEnv] : [])),
    );
    out.push({ name, secretName, port: p, ...(urlEnv ? { urlEnv } : {}) });
  }
  const first = out[0];
  if (first && !out.some((d) => d.urlEnv)) out[0] = { ...first, urlEnv: DEFAULT_DATABASE_URL_ENV };
  return out;
}

/**
 * The Secrets the pod's `chaperone.dev/databases` names, read leniently (an
 * invalid annotation is rejected by `resolvePodSettings`; this serves the
 * independent custody check on any pod).
 */
export function declaredDatabaseSecrets(pod: Pod): string[] {
  const raw = pod.metadata?.annotations?.[OVERRIDE_ANNOTATIONS.databases] ?? '';
  return raw
    .split(',')
    .map((entry) => (entry.split(';')[0] ?? '').split('=')[1]?.trim() ?? '')
    .filter((name) => name.length > 0);
}

/** True when the pod carries the opt-out annotation. */
export function isOptedOut(pod: Pod): boolean {
  return pod.metadata?.annotations?.[INJECT_LABEL] === OPT_OUT_VALUE;
}

/**
 * Reads and validates the pod's `chaperone.dev/*` annotations against the
 * injector's configuration. Throws InjectionRejected naming the annotation.
 */
export function resolvePodSettings(pod: Pod, config: InjectionConfig): PodSettings {
  const ann = pod.metadata?.annotations ?? {};
  for (const key of Object.keys(ann)) {
    if (key.startsWith(ANNOTATION_PREFIX) && !KNOWN_ANNOTATIONS.includes(key)) {
      throw new InjectionRejected(
        key,
        `unknown Chaperone annotation${didYouMean(key, KNOWN_ANNOTATIONS)}; known: ${KNOWN_ANNOTATIONS.join(', ')}`,
      );
    }
  }
  const inject = ann[INJECT_LABEL];
  if (inject !== undefined && !['true', 'enabled', OPT_OUT_VALUE].includes(inject)) {
    throw new InjectionRejected(INJECT_LABEL, `"${inject}" must be "false" (opt out) or "true"`);
  }

  const settings = hasOverrides(ann) ? fromAnnotations(ann, config) : defaultSettings(config);
  checkPorts(pod, settings);
  return settings;
}

function hasOverrides(ann: Record<string, string>): boolean {
  for (const key in ann)
    if (key.startsWith(ANNOTATION_PREFIX) && key !== STATUS_ANNOTATION && key !== INJECT_LABEL) return true;
  return false;
}

const defaults = new WeakMap<InjectionConfig, PodSettings>();

/** The settings of a pod without overrides: one shared, frozen object per configuration. */
function defaultSettings(config: InjectionConfig): PodSettings {
  let s = defaults.get(config);
  if (!s) {
    s = fromAnnotations({}, config);
    defaults.set(config, s);
  }
  return s;
}

function fromAnnotations(ann: Record<string, string>, config: InjectionConfig): PodSettings {
  const A = OVERRIDE_ANNOTATIONS;
  let image = config.image;
  const imageRaw = ann[A.image];
  if (imageRaw !== undefined) {
    if (!IMAGE.test(imageRaw))
      throw new InjectionRejected(A.image, `"${imageRaw}" is not an image reference`);
    const allowed = config.allowedImages.some(
      (prefix) =>
        imageRaw === prefix || imageRaw.startsWith(`${prefix}:`) || imageRaw.startsWith(`${prefix}@`),
    );
    if (!allowed) {
      throw new InjectionRejected(
        A.image,
        `"${imageRaw}" is not from an allowed repository (${config.allowedImages.join(', ')}); the sidecar holds the pod's credentials, so only trusted images may run it (injector setting --allowed-images)`,
      );
    }
    image = imageRaw;
  }

  const logLevel = oneOf(A.logLevel, ann[A.logLevel], SIDECAR_LOG_LEVELS, config.logLevel);

  const kubePort =
    ann[A.kubePort] === undefined ? config.kubePort : port(A.kubePort, ann[A.kubePort] as string);
  const metricsPort =
    ann[A.metricsPort] === undefined ? config.metricsPort : port(A.metricsPort, ann[A.metricsPort] as string);

  const modeRaw = ann[A.mode];
  const mode = oneOf(A.mode, modeRaw, SIDECAR_MODES, config.mode);
  if (mode === 'native' && !config.nativeSidecarsSupported) {
    throw new InjectionRejected(
      modeRaw !== undefined ? A.mode : 'sidecarMode',
      'native sidecars need Kubernetes 1.29 or later; this API server would drop restartPolicy: Always and the sidecar would block the pod as an init container. Use "classic"',
    );
  }

  const resources: { -readonly [K in keyof SidecarResources]: SidecarResources[K] } = { ...config.resources };
  for (const key of ['cpuRequest', 'memoryRequest', 'cpuLimit', 'memoryLimit'] as const) {
    const raw = ann[A[key]];
    if (raw !== undefined) resources[key] = quantity(A[key], raw);
  }

  const databases =
    ann[A.databases] === undefined ? [] : parseDatabases(ann[A.databases] as string, config.postgresPort);

  return Object.freeze({
    image,
    logLevel,
    kubePort,
    metricsPort,
    mode,
    resources,
    databases: Object.freeze(databases),
  });
}

/** The sidecar's listeners share the pod's network namespace with the agent: no port may be used twice. */
function checkPorts(pod: Pod, settings: PodSettings): void {
  const A = OVERRIDE_ANNOTATIONS;
  const { kubePort, metricsPort, databases } = settings;
  // Who owns a port among the sidecar's listeners, in the order they are claimed.
  const owner = (p: number, claimed: number): string | undefined => {
    if (p === kubePort) return 'the Kubernetes API listener';
    if (claimed > 1 && p === metricsPort) return 'the metrics listener';
    for (let i = 0; i < Math.min(databases.length, claimed - 2); i++) {
      const d = databases[i] as DatabaseBinding;
      if (d.port === p) return `database "${d.name}"`;
    }
    return undefined;
  };
  const claim = (p: number, what: string, field: string, claimed: number) => {
    const other = owner(p, claimed);
    if (other) throw new InjectionRejected(field, `port ${p} for ${what} is already used by ${other}`);
  };
  claim(metricsPort, 'the metrics listener', A.metricsPort, 1);
  for (let i = 0; i < databases.length; i++) {
    const d = databases[i] as DatabaseBinding;
    claim(d.port, `database "${d.name}"`, A.databases, 2 + i);
  }
  const all = 2 + databases.length;
  for (const list of [pod.spec.initContainers ?? [], pod.spec.containers]) {
    for (const c of list) {
      if (!c.ports || c.name === SIDECAR_NAME) continue;
      for (const p of c.ports) {
        const o = owner(p.containerPort, all);
        if (o) {
          throw new InjectionRejected(
            o.startsWith('database') ? A.databases : o.includes('metrics') ? A.metricsPort : A.kubePort,
            `port ${p.containerPort} (${o}) is also declared by container "${c.name}"; pick another port with this annotation`,
          );
        }
      }
    }
  }
}
