/**
 * The injector's commands on the `chaperone` CLI:
 *   chaperone injector                      the webhook + controllers
 *   chaperone check-inject <ns>/<pod> | -f  explains (non-)injection
 *   chaperone wait-for-sidecar              the sidecar's postStart hook
 * Registering is cheap: each action imports what it runs.
 */
import { parseDuration, type RegisterCommands, UsageError, withConfigOptions } from '@chaperone/shared';
import { Option } from 'commander';
import { injectorSchema } from './injector-config.ts';

export const register: RegisterCommands = (program, ctx) => {
  const injector = program
    .command('injector')
    .description('Mutating admission webhook: injects the sidecar, keeps webhook TLS and NetworkPolicies');
  const toSettings = withConfigOptions(injector, injectorSchema(ctx.version), ctx);
  injector.action(async (opts: Record<string, unknown>) => {
    const settings = toSettings(opts);
    const [{ createLogger }, { createRegistry }, { runInjector }] = await Promise.all([
      import('@chaperone/shared/logger'),
      import('@chaperone/shared/metrics'),
      import('./injector-runtime.ts'),
    ]);
    const logger = createLogger({ name: 'injector', level: settings.logLevel });
    const registry = createRegistry({ component: 'injector' });
    const stop = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'signal received');
      stop.abort();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    try {
      await runInjector({
        settings,
        version: ctx.version,
        env: ctx.env,
        logger,
        registry,
        signal: stop.signal,
      });
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  });

  program
    .command('check-inject')
    .description(
      'Explain whether and why a pod is (or would be) injected with the Chaperone sidecar (in an opted-in namespace, a pod that would not be injected is rejected unless its creator is exempt)',
    )
    .argument('[pod]', 'a live pod: <namespace>/<pod>, or <pod> with -n')
    .option(
      '-f, --filename <file>',
      'a manifest (Pod, Deployment, Job, …; - for stdin) instead of a live pod',
    )
    .option('-n, --namespace <namespace>', 'namespace of the pod or manifest')
    .option('--kubeconfig <path>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config or in-cluster)')
    .addOption(
      new Option('-o, --output <format>', 'text explanation, json report, or yaml of the injected manifest')
        .choices(['text', 'json', 'yaml'])
        .default('text'),
    )
    .option(
      '--offline',
      'do not contact a cluster; assume the namespace is opted in and use default settings',
      false,
    )
    .action(
      async (
        pod: string | undefined,
        opts: {
          filename?: string;
          namespace?: string;
          kubeconfig?: string;
          output: 'text' | 'json' | 'yaml';
          offline: boolean;
        },
      ) => {
        const { checkInject } = await import('./check-inject.ts');
        const { text } = await checkInject(
          {
            ...(pod ? { target: pod } : {}),
            ...(opts.filename ? { filename: opts.filename } : {}),
            ...(opts.namespace ? { namespace: opts.namespace } : {}),
            ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
            output: opts.output,
            offline: opts.offline,
          },
          { version: ctx.version, env: ctx.env },
        );
        process.stdout.write(text);
      },
    );

  program
    .command('wait-for-sidecar')
    .description('Block until the sidecar is ready for agents (its postStart hook; not for direct use)')
    .option('--port <port>', 'the sidecar’s local Kubernetes API port', '6443')
    .option('--dir <path>', 'where the sidecar writes the agents’ service-account files')
    .option('--timeout <duration>', 'give up after this long', '120s')
    .action(async (opts: { port: string; dir?: string; timeout: string }) => {
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new UsageError(`--port ${opts.port} is not a port`);
      let timeoutMs: number;
      try {
        timeoutMs = parseDuration(opts.timeout);
      } catch (err) {
        throw new UsageError(`--timeout ${opts.timeout}: ${(err as Error).message}`);
      }
      const { waitForSidecar } = await import('./wait-for-sidecar.ts');
      await waitForSidecar({ port, timeoutMs, ...(opts.dir ? { dir: opts.dir } : {}) });
    });
};
