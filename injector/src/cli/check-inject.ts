/**
 * `chaperone check-inject <namespace>/<pod> | -f manifest.yaml`: explains
 * whether and why a pod is (or would be) injected. Facts come from the
 * cluster when one is reachable — the pod, its namespace's labels, the
 * Chaperone webhook configurations and the injection settings the injector
 * published on them — so the answer is the injector's own.
 */
import { readFileSync } from 'node:fs';
import { ChaperoneError, parseConfig, UsageError } from '@chaperone/shared';
import { KubeClient, resolveKubeConnection } from '@chaperone/shared/kube';
import YAML from 'yaml';
import { explainInjection, formatReport, type InjectionReport } from '../admission/explain-injection.ts';
import { unmetRequirement } from '../admission/label-selector.ts';
import type { MutatingWebhookConfiguration } from '../admission/webhook-configuration.ts';
import { WEBHOOK_CONFIGURATIONS_PATH, WEBHOOK_NAME } from '../admission/webhook-configuration.ts';
import type { InjectionConfig } from '../inject/injection-config.ts';
import { podInManifest } from '../inject/workload.ts';
import type { Pod } from '../k8s-types.ts';
import { INJECTOR_CONFIG_ANNOTATION } from '../names.ts';
import { injectionConfigFrom, injectorSchema } from './injector-config.ts';

export interface CheckInjectOptions {
  readonly target?: string;
  readonly filename?: string;
  readonly namespace?: string;
  readonly kubeconfig?: string;
  readonly output: 'text' | 'json' | 'yaml';
  readonly offline: boolean;
}

interface Cluster {
  readonly client: KubeClient;
  readonly defaultNamespace: string | undefined;
}

function connect(
  o: CheckInjectOptions,
  env: Readonly<Record<string, string | undefined>>,
): Cluster | undefined {
  if (o.offline) return undefined;
  try {
    const conn = resolveKubeConnection(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}, env);
    return {
      client: new KubeClient(conn, { userAgent: 'chaperone-check-inject' }),
      defaultNamespace: conn.namespace,
    };
  } catch (err) {
    if (o.filename && !o.kubeconfig) return undefined; // a manifest can be explained offline
    throw err;
  }
}

function defaultConfig(version: string): InjectionConfig {
  return injectionConfigFrom(parseConfig(injectorSchema(version), { env: {} }), version, false);
}

/** The injection settings an injector published on its webhook configuration, if it did. */
function publishedSettings(w: MutatingWebhookConfiguration): InjectionConfig | undefined {
  const raw = w.metadata.annotations?.[INJECTOR_CONFIG_ANNOTATION];
  if (!raw) return undefined;
  try {
    const c = JSON.parse(raw) as InjectionConfig;
    if (typeof c.image === 'string' && typeof c.kubePort === 'number' && Array.isArray(c.excludedNamespaces))
      return c;
  } catch {
    // not readable: as if not published
  }
  return undefined;
}

/**
 * The settings of the injector that would answer for this namespace: those
 * published on a webhook configuration selecting it, so that another
 * injector's settings on the same cluster are never used to judge a pod.
 * When none selects it (the pod is not injected there), any injector's
 * published settings describe what injection would do.
 */
export function configFrom(
  webhooks: readonly MutatingWebhookConfiguration[],
  version: string,
  namespaceLabels?: Record<string, string>,
): { config: InjectionConfig; note?: string } {
  const selects = (w: MutatingWebhookConfiguration) => {
    if (namespaceLabels === undefined) return true;
    const hook = w.webhooks?.find((h) => h.name === WEBHOOK_NAME);
    return hook !== undefined && unmetRequirement(hook.namespaceSelector, namespaceLabels) === undefined;
  };
  const selecting = webhooks.filter(selects);
  for (const w of selecting.length > 0 ? selecting : webhooks) {
    const config = publishedSettings(w);
    if (config) return { config };
  }
  return {
    config: defaultConfig(version),
    note: 'the injector’s settings are not published on its webhook configuration; using defaults',
  };
}

interface ClusterFacts {
  readonly namespaceLabels?: Record<string, string>;
  readonly namespaceMissing?: boolean;
  readonly webhooks: readonly MutatingWebhookConfiguration[];
}

async function clusterFacts(cluster: Cluster, namespace: string): Promise<ClusterFacts> {
  const ns = await cluster.client.get<{ metadata: { labels?: Record<string, string> } }>(
    `/api/v1/namespaces/${namespace}`,
  );
  const list = await cluster.client.get<{ items: MutatingWebhookConfiguration[] }>(
    WEBHOOK_CONFIGURATIONS_PATH,
    {
      labelSelector: 'app.kubernetes.io/name=chaperone-injector',
    },
  );
  return ns
    ? { namespaceLabels: ns.metadata.labels ?? {}, webhooks: list?.items ?? [] }
    : { namespaceMissing: true, webhooks: list?.items ?? [] };
}

export async function checkInject(
  o: CheckInjectOptions,
  ctx: { version: string; env: Readonly<Record<string, string | undefined>>; stdin?: () => string },
): Promise<{ text: string; reports: InjectionReport[] }> {
  if (Boolean(o.target) === Boolean(o.filename)) {
    throw new UsageError(
      'name a pod (<namespace>/<pod>, or <pod> with -n) or a manifest (-f file.yaml), not both',
    );
  }
  const cluster = connect(o, ctx.env);
  try {
    const reports: InjectionReport[] = [];
    const notes: string[] = [];
    if (o.target) {
      if (!cluster) throw new UsageError('checking a live pod needs a cluster (drop --offline)');
      const [nsPart, podPart] = o.target.includes('/')
        ? o.target.split('/', 2)
        : [o.namespace ?? cluster.defaultNamespace ?? 'default', o.target];
      const namespace = nsPart as string;
      const name = podPart as string;
      const pod = await cluster.client.get<Pod>(`/api/v1/namespaces/${namespace}/pods/${name}`);
      if (!pod) throw new ChaperoneError('not_found', `pod ${namespace}/${name} does not exist`);
      const facts = await clusterFacts(cluster, namespace);
      const { config, note } = configFrom(facts.webhooks, ctx.version, facts.namespaceLabels);
      if (note) notes.push(note);
      reports.push(
        explainInjection({ pod, namespace, live: true, ...facts, config, target: `${namespace}/${name}` }),
      );
    } else {
      const text =
        o.filename === '-'
          ? (ctx.stdin?.() ?? readFileSync(0, 'utf8'))
          : readFileSync(o.filename as string, 'utf8');
      const docs = YAML.parseAllDocuments(text)
        .map((d) => d.toJS() as unknown)
        .filter((d) => d !== null && d !== undefined);
      if (docs.length === 0) throw new UsageError(`${o.filename} holds no manifest`);
      const cache = new Map<string, ClusterFacts>();
      for (const doc of docs) {
        let found: ReturnType<typeof podInManifest>;
        try {
          found = podInManifest(doc);
        } catch (err) {
          notes.push(`skipping a document: ${(err as Error).message}`);
          continue;
        }
        const namespace =
          found.pod.metadata?.namespace ?? o.namespace ?? cluster?.defaultNamespace ?? 'default';
        let facts: ClusterFacts | undefined;
        if (cluster) {
          facts = cache.get(namespace) ?? (await clusterFacts(cluster, namespace));
          cache.set(namespace, facts);
        }
        const { config, note } = facts
          ? configFrom(facts.webhooks, ctx.version, facts.namespaceLabels)
          : { config: defaultConfig(ctx.version), note: 'offline: using the default injection settings' };
        if (note && !notes.includes(note)) notes.push(note);
        const report = explainInjection({
          pod: found.pod,
          namespace,
          live: false,
          ...(facts ?? {}),
          config,
          target: `${namespace}/${found.description}`,
        });
        reports.push(report.injected ? { ...report, injected: found.wrap(report.injected) as Pod } : report);
      }
      if (reports.length === 0)
        throw new UsageError(`${o.filename} holds no Pod or workload with a pod template`);
    }
    let text: string;
    if (o.output === 'json')
      text = `${JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 2)}\n`;
    else if (o.output === 'yaml') {
      text = reports
        .map((r) =>
          r.injected
            ? YAML.stringify(r.injected, { lineWidth: 0, aliasDuplicateObjects: false })
            : `# ${r.target}: ${r.summary}\n`,
        )
        .join('---\n');
    } else text = reports.map(formatReport).join('') + notes.map((n) => `note: ${n}\n`).join('');
    return { text, reports };
  } finally {
    await cluster?.client.close();
  }
}
