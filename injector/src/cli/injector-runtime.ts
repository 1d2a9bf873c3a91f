/**
 * `chaperone injector`, assembled: the webhook server (every replica), the
 * serving certificate (self-managed in a Secret, or files), and the leader's
 * duties — certificates, the webhook configuration, NetworkPolicies — behind a
 * Lease. Everything is built here from the frozen settings; nothing below
 * reads the environment.
 */
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import {
  ChaperoneError,
  ConfigError,
  type Logger,
  type Registry,
  serveMetrics,
  ValidationError,
} from '@chaperone/shared';
import { KubeClient, resolveKubeConnection } from '@chaperone/shared/kube';
import { createAdmissionHandler } from '../admission/admission-handler.ts';
import {
  type AdmissionServer,
  type ServingCertificate,
  startAdmissionServer,
} from '../admission/admission-server.ts';
import { checkExemptions, type Exemptions } from '../admission/exemptions.ts';
import { createValidationHandler } from '../admission/validation-handler.ts';
import {
  desiredValidatingWebhookConfiguration,
  desiredWebhookConfiguration,
  type WebhookSettings,
} from '../admission/webhook-configuration.ts';
import { readCaBundle } from '../controllers/collector-ca.ts';
import { CollectorCaObject } from '../controllers/collector-ca-controller.ts';
import { parseEndpoint, parseEndpoints, parseLabelSelector } from '../controllers/egress-endpoint.ts';
import { sleep } from '../controllers/informer.ts';
import { LeaderElector } from '../controllers/leader-election.ts';
import { NamespaceController, type NamespacedObject } from '../controllers/namespace-controller.ts';
import type { CollectorEgress, NetworkPolicySettings } from '../controllers/network-policy.ts';
import { NetworkPolicyObject } from '../controllers/network-policy-controller.ts';
import { fetchServerVersion, supportsNativeSidecars } from '../controllers/server-version.ts';
import { Wakeup } from '../controllers/wakeup.ts';
import { runWebhookController } from '../controllers/webhook-controller.ts';
import type { InjectionConfig } from '../inject/injection-config.ts';
import { createInjectorMetrics, type InjectorMetrics } from '../injector-metrics.ts';
import { loadCertificateFiles, watchCertificateFiles } from '../tls/certificate-files.ts';
import { runCertificateIssuer, watchCertificateSecret } from '../tls/certificate-secret.ts';
import { type InjectorSettings, injectionConfigFrom, instanceName } from './injector-config.ts';

export interface RuntimeOptions {
  readonly settings: InjectorSettings;
  readonly version: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Aborts on SIGTERM/SIGINT. */
  readonly signal: AbortSignal;
}

/** DNS names and IPs the serving certificate must carry. */
export function servingNames(s: InjectorSettings): { dnsNames: string[]; ipAddresses: string[] } {
  const svc = s.serviceName;
  const dns = new Set([
    svc,
    `${svc}.${s.namespace}`,
    `${svc}.${s.namespace}.svc`,
    `${svc}.${s.namespace}.svc.cluster.local`,
    ...s.extraDnsNames,
  ]);
  const ips = new Set(s.extraIpAddresses);
  if (s.webhookUrl) {
    const host = new URL(s.webhookUrl).hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) ips.add(host);
    else dns.add(host);
  }
  for (const ip of ips)
    if (isIP(ip) === 0) throw new ConfigError(`--extra-ip-addresses: "${ip}" is not an IP address`);
  return { dnsNames: [...dns], ipAddresses: [...ips] };
}

export function networkPolicySettings(s: InjectorSettings): NetworkPolicySettings {
  try {
    let collector: CollectorEgress | undefined;
    if (s.collectorUrl) {
      const u = new URL(s.collectorUrl);
      const host = u.hostname.replace(/^\[|\]$/g, '');
      const urlPort = Number(u.port) || (u.protocol === 'https:' || u.protocol === 'wss:' ? 443 : 80);
      const port = s.collectorPort ?? urlPort;
      if (isIP(host)) collector = { cidr: `${host}/${isIP(host) === 4 ? 32 : 128}`, port };
      else {
        const svcNs = /^[^.]+\.([^.]+)\.svc(\.|$)/.exec(host)?.[1];
        collector = {
          namespace: s.collectorNamespace ?? svcNs ?? s.namespace,
          podSelector: parseLabelSelector(s.collectorSelector),
          port,
        };
      }
    }
    return {
      apiServer: parseEndpoints(s.apiServerEndpoints),
      dnsPodSelector: parseLabelSelector(s.dnsSelector),
      dnsCidrs: s.dnsCidrs.map(
        (c) =>
          parseEndpoint(
            `${c.includes(':') ? `[${c.split('/')[0]}]${c.includes('/') ? `/${c.split('/')[1]}` : ''}` : c}:53`,
          ).cidr,
      ),
      ...(collector ? { collector } : {}),
      upstreams: parseEndpoints(s.egressUpstreams),
      ...(s.revision ? { revision: s.revision } : {}),
    };
  } catch (err) {
    if (err instanceof ValidationError)
      throw new ConfigError(`NetworkPolicy settings: ${err.message}`, { cause: err });
    throw err;
  }
}

/** The validating webhook's URL: the mutating one's scheme, host and port with the validating path. */
export function validatingWebhookUrl(s: InjectorSettings): string | undefined {
  return s.webhookUrl ? new URL(s.validatingWebhookPath, s.webhookUrl).toString() : undefined;
}

export function exemptionsFrom(s: InjectorSettings): Exemptions {
  const e = Object.freeze({
    users: Object.freeze([...s.exemptUsers]),
    groups: Object.freeze([...s.exemptGroups]),
  });
  checkExemptions(e);
  return e;
}

export function checkSettings(s: InjectorSettings): void {
  if (s.validatingWebhookPath === s.webhookPath)
    throw new ConfigError('--validating-webhook-path must differ from --webhook-path');
  if (s.webhookUrl && new URL(s.webhookUrl).pathname === s.validatingWebhookPath) {
    throw new ConfigError(
      `--webhook-url ends in ${s.validatingWebhookPath}, the validating webhook's path (--validating-webhook-path): give the mutating webhook's URL`,
    );
  }
  exemptionsFrom(s);
  if (Boolean(s.tlsCertFile) !== Boolean(s.tlsKeyFile)) {
    throw new ConfigError('--tls-cert-file and --tls-key-file go together');
  }
  if (s.tlsCaFile && !s.tlsCertFile) throw new ConfigError('--tls-ca-file only applies with --tls-cert-file');
  if (s.collectorCaFile) {
    const scheme = s.collectorUrl ? new URL(s.collectorUrl).protocol : undefined;
    if (scheme !== 'https:' && scheme !== 'wss:') {
      throw new ConfigError(
        `--collector-ca-file is for a collector reached over TLS: --collector-url ${s.collectorUrl ? `is ${s.collectorUrl}` : 'is not set'}; give an https:// (or wss://) URL`,
      );
    }
  }
  if (s.leaseRenewDeadline >= s.leaseDuration)
    throw new ConfigError('--lease-renew-deadline must be shorter than --lease-duration');
  if (s.leaseRenewInterval >= s.leaseRenewDeadline)
    throw new ConfigError('--lease-renew-interval must be shorter than --lease-renew-deadline');
  if (s.certRenewBefore !== undefined && s.certRenewBefore >= s.certValidity) {
    throw new ConfigError('--cert-renew-before must be shorter than --cert-validity');
  }
  if (s.tokenExpiration < 600_000)
    throw new ConfigError('--token-expiration must be at least 10m (the API server’s minimum)');
}

function certExpiry(cert: string): number {
  return new Date(new X509Certificate(cert).validTo).getTime();
}

export async function runInjector(o: RuntimeOptions): Promise<void> {
  const s = o.settings;
  const log = o.logger;
  checkSettings(s);
  const metrics: InjectorMetrics = createInjectorMetrics(o.registry);
  const instance = instanceName(s);
  const selfManaged = !s.tlsCertFile;
  const needKube =
    s.manageWebhook ||
    s.networkPolicies ||
    Boolean(s.collectorCaFile) ||
    s.sidecarMode === 'auto' ||
    selfManaged;
  const npSettings = s.networkPolicies ? networkPolicySettings(s) : undefined;
  // Read (and checked) before anything starts: sidecars would be told to mount a CA never published.
  const collectorCaBundle = s.collectorCaFile ? readCaBundle(s.collectorCaFile) : undefined;
  const names = servingNames(s);

  const client = needKube
    ? new KubeClient(resolveKubeConnection(s.kubeconfig ? { kubeconfig: s.kubeconfig } : {}, o.env), {
        userAgent: 'chaperone-injector',
      })
    : undefined;
  let native = s.sidecarMode === 'native';
  if (client) {
    let v: Awaited<ReturnType<typeof fetchServerVersion>>;
    try {
      v = await fetchServerVersion(client);
    } catch (err) {
      throw new ChaperoneError(
        'unavailable',
        `cannot reach the Kubernetes API at ${client.connection.server} (${client.connection.source}): ${(err as Error).message}`,
        { cause: err },
      );
    }
    native = supportsNativeSidecars(v);
    if (s.sidecarMode === 'native' && !native) {
      throw new ConfigError(
        `--sidecar-mode native needs Kubernetes 1.29 or later; the API server is ${v.gitVersion}`,
      );
    }
    log.info(
      {
        server: client.connection.server,
        version: v.gitVersion,
        nativeSidecars: native,
        via: client.connection.source,
      },
      'connected to the Kubernetes API',
    );
  }
  const injection: InjectionConfig = injectionConfigFrom(s, o.version, native);
  log.info({ mode: injection.mode, image: injection.image, instance }, 'injection settings');

  const background = new AbortController();
  const stopBackground = () => background.abort();
  o.signal.addEventListener('abort', stopBackground, { once: true });
  const tasks: Promise<unknown>[] = [];
  const track = (what: string, p: Promise<unknown>) =>
    tasks.push(p.catch((err: unknown) => log.error({ err, task: what }, 'background task failed')));

  let server: AdmissionServer | undefined;
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  // Whatever happens (a port in use, unreadable certificate files), nothing is left running.
  const cleanup = async () => {
    background.abort();
    o.signal.removeEventListener('abort', stopBackground);
    await Promise.allSettled(tasks);
    await server?.close(10_000);
    await metricsServer?.close();
    await client?.close();
  };
  try {
    metricsServer = await serveMetrics(o.registry, s.metricsAddress, s.metricsPort);
    log.info({ url: metricsServer.url }, 'serving metrics');
    await serve();
  } catch (err) {
    await cleanup();
    throw err;
  }
  await cleanup();
  log.info('stopped');

  async function serve(): Promise<void> {
    // --- serving certificate and server
    let current: ServingCertificate | undefined;
    let caBundle: string | undefined;
    let shuttingDown = false;
    let resolveFirst: (() => void) | undefined;
    const firstCertificate = new Promise<void>((r) => {
      resolveFirst = r;
    });
    const webhookWakeup = new Wakeup();
    const validatingWakeup = new Wakeup();
    /** A new CA bundle: both webhook configurations publish it. */
    const caBundleChanged = () => {
      webhookWakeup.wake();
      validatingWakeup.wake();
    };
    const certWakeup = new Wakeup();

    const useCertificate = (cert: ServingCertificate) => {
      if (current && current.cert === cert.cert && current.key === cert.key) return;
      try {
        if (server) server.setCertificate(cert);
        current = cert;
        metrics.certificateExpiry.set(certExpiry(cert.cert) / 1000);
        metrics.certificateReloads.inc();
        log.info({ notAfter: new Date(certExpiry(cert.cert)).toISOString() }, 'serving certificate loaded');
        resolveFirst?.();
      } catch (err) {
        log.error(
          { err: (err as Error).message },
          'the new serving certificate is unusable; keeping the current one',
        );
      }
    };

    if (!selfManaged) {
      const files = loadCertificateFiles(s.tlsCertFile as string, s.tlsKeyFile as string, s.tlsCaFile);
      caBundle = files.ca;
      useCertificate(files);
      track(
        'certificate-files',
        watchCertificateFiles({
          certPath: s.tlsCertFile as string,
          keyPath: s.tlsKeyFile as string,
          ...(s.tlsCaFile ? { caPath: s.tlsCaFile } : {}),
          intervalMs: s.certReloadInterval,
          initial: files,
          signal: background.signal,
          logger: log,
          onChange: (f) => {
            useCertificate(f);
            if (f.ca !== caBundle) {
              caBundle = f.ca;
              caBundleChanged();
            }
          },
        }),
      );
    } else if (client) {
      track(
        'certificate-secret',
        watchCertificateSecret({
          client,
          namespace: s.namespace,
          secretName: `${instance}-tls`,
          signal: background.signal,
          logger: log,
          onChange: (set) => {
            certWakeup.wake(); // the leader re-checks (repairs a deleted or edited Secret)
            if (set?.cert && set.key) {
              try {
                const x = new X509Certificate(set.cert);
                if (!x.checkPrivateKey(createPrivateKey(set.key))) throw new Error('key mismatch');
                useCertificate({ cert: set.cert, key: set.key });
              } catch (err) {
                log.warn({ err: (err as Error).message }, 'the TLS Secret holds no usable certificate yet');
              }
            }
            if (set?.caBundle && set.caBundle !== caBundle) {
              caBundle = set.caBundle;
              caBundleChanged();
            }
          },
        }),
      );
    }

    // --- leader duties
    const webhookSettings: WebhookSettings = {
      name: instance,
      namespace: s.namespace,
      ...(s.revision ? { revision: s.revision } : {}),
      serviceName: s.serviceName,
      servicePort: s.servicePort,
      path: s.webhookPath,
      ...(s.webhookUrl ? { url: s.webhookUrl } : {}),
      validatePath: s.validatingWebhookPath,
      ...(s.webhookUrl ? { validateUrl: validatingWebhookUrl(s) as string } : {}),
      timeoutSeconds: s.webhookTimeoutSeconds,
      injection,
    };
    const validation = Object.freeze({
      injection,
      ...(s.revision ? { revision: s.revision } : {}),
      exemptions: exemptionsFrom(s),
    });
    if (validation.exemptions.users.length + validation.exemptions.groups.length > 0) {
      log.info(
        { users: validation.exemptions.users, groups: validation.exemptions.groups },
        'exempt from the validating webhook',
      );
    }
    const manageCaBundle = selfManaged || Boolean(s.tlsCaFile);
    const leaderDuties = s.manageWebhook || s.networkPolicies || Boolean(collectorCaBundle) || selfManaged;
    let elector: LeaderElector | undefined;
    if (client && leaderDuties) {
      elector = new LeaderElector({
        client,
        namespace: s.namespace,
        name: instance,
        identity: s.leaderIdentity ?? `${hostname()}_${randomBytes(4).toString('hex')}`,
        leaseDurationMs: s.leaseDuration,
        renewIntervalMs: s.leaseRenewInterval,
        renewDeadlineMs: s.leaseRenewDeadline,
        logger: log,
        onStartedLeading: (leading) => {
          metrics.leader.set(1);
          if (selfManaged) {
            const validity = s.certValidity;
            track(
              'certificate-issuer',
              runCertificateIssuer({
                client,
                namespace: s.namespace,
                secretName: `${instance}-tls`,
                settings: {
                  commonName: `${s.serviceName}.${s.namespace}.svc`,
                  dnsNames: names.dnsNames,
                  ipAddresses: names.ipAddresses,
                  leafValidityMs: validity,
                  ...(s.certRenewBefore !== undefined ? { renewBeforeMs: s.certRenewBefore } : {}),
                  caValidityMs: s.caValidity,
                  propagationDelayMs: Math.min(60_000, Math.max(1000, validity / 20)),
                },
                logger: log,
                metrics,
                intervalMs: Math.max(1000, Math.min(30_000, Math.floor(validity / 40))),
                signal: leading,
                wakeups: certWakeup,
              }),
            );
          }
          if (s.manageWebhook) {
            // Validating first: once pods are injected, nothing uninjected slips in beside them.
            for (const [task, kind, build, wakeup] of [
              [
                'validating-webhook-configuration',
                'ValidatingWebhookConfiguration',
                desiredValidatingWebhookConfiguration,
                validatingWakeup,
              ],
              [
                'webhook-configuration',
                'MutatingWebhookConfiguration',
                desiredWebhookConfiguration,
                webhookWakeup,
              ],
            ] as const) {
              track(
                task,
                runWebhookController(
                  {
                    client,
                    kind,
                    name: instance,
                    desired: () =>
                      manageCaBundle && !caBundle
                        ? undefined
                        : build(webhookSettings, manageCaBundle ? caBundle : undefined),
                    manageCaBundle,
                    resyncIntervalMs: s.resyncInterval,
                    logger: log,
                    metrics,
                    wakeup,
                  },
                  leading,
                ),
              );
            }
          }
          const objects: NamespacedObject[] = [];
          if (npSettings) {
            objects.push(
              new NetworkPolicyObject({
                client,
                settings: npSettings,
                resyncIntervalMs: s.resyncInterval,
                logger: log,
                metrics,
              }),
            );
          }
          if (s.collectorCaFile && collectorCaBundle) {
            let bundle = collectorCaBundle;
            try {
              bundle = readCaBundle(s.collectorCaFile); // it may have changed since start
            } catch {
              // the object's own checks report it
            }
            objects.push(
              new CollectorCaObject({
                client,
                caFile: s.collectorCaFile,
                bundle,
                ...(s.revision ? { revision: s.revision } : {}),
                intervalMs: s.certReloadInterval,
                logger: log,
                metrics,
              }),
            );
          }
          if (objects.length > 0) {
            const controller = new NamespaceController({
              client,
              objects,
              ...(s.revision ? { revision: s.revision } : {}),
              excludedNamespaces: injection.excludedNamespaces,
              resyncIntervalMs: s.resyncInterval,
              logger: log,
              metrics,
            });
            track('namespace-objects', controller.run(leading));
          }
        },
        onStoppedLeading: () => metrics.leader.set(0),
      });
      track('leader-election', elector.run(background.signal));
    }

    // --- serve once a certificate is there
    await Promise.race([
      firstCertificate,
      new Promise<void>((r) => o.signal.addEventListener('abort', () => r(), { once: true })),
    ]);
    if (!o.signal.aborted && current) {
      server = await startAdmissionServer({
        host: s.listenAddress,
        port: s.port,
        certificate: current,
        path: s.webhookPath,
        maxRequestBytes: s.maxRequestBytes,
        handle: createAdmissionHandler({ config: () => injection, metrics, logger: log }),
        routes: {
          [s.validatingWebhookPath]: createValidationHandler({
            settings: () => validation,
            metrics,
            logger: log,
          }),
        },
        ready: () => !shuttingDown,
        logger: log,
        metrics,
      });
      // A certificate that arrived while starting.
      if (current) server.setCertificate(current);
      log.info({ url: server.url }, 'webhook listening');
    }

    await new Promise<void>((r) => {
      if (o.signal.aborted) r();
      else o.signal.addEventListener('abort', () => r(), { once: true });
    });
    shuttingDown = true;
    log.info({ delayMs: s.shutdownDelay }, 'shutting down: no longer ready');
    // Leadership is handed over at once (the elector releases the Lease); serving continues while endpoints drain.
    await Promise.all([sleep(server ? s.shutdownDelay : 0), Promise.allSettled(tasks)]);
  }
}
