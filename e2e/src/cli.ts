/**
 * `chaperone dev up|down`: the local control plane and PostgreSQL by hand, for
 * debugging. `up` stays in the foreground until Ctrl-C (or `dev down`), then
 * stops every process it started. Registering is cheap: each action imports what
 * it runs.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ChaperoneError, type RegisterCommands } from '@chaperone/shared';
import { Option } from 'commander';
import type { ControlPlane } from './control-plane.ts';

function pidFile(env: Readonly<Record<string, string | undefined>>): string {
  const root = env.CHAPERONE_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'chaperone');
  return join(root, 'dev-up.pid');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The control plane of a running e2e suite (CHAPERONE_E2E_STATE), so the demo test adds no second one. */
async function e2eControlPlane(): Promise<ControlPlane> {
  const { kubeInfo } = await import('./environment.ts');
  const k = kubeInfo();
  return {
    mode: k.mode,
    kubeconfigPath: k.kubeconfigPath,
    server: k.server,
    caCert: k.caCert,
    version: k.version,
    serviceAccountIssuer: k.serviceAccountIssuer,
    dir: k.dir,
    caKey: undefined,
    processes: [],
    stop: async () => {},
  };
}

export const register: RegisterCommands = (program, ctx) => {
  program
    .command('demo')
    .description(
      'Bring up the guarded stack locally (real control plane, injector, collector) and watch a rogue agent get stopped',
    )
    .option('--keep', 'keep everything running until Ctrl-C, to explore')
    .option('--kubeconfig <path>', 'a real cluster: print what would be installed there, install nothing')
    .option('--summary-file <path>', 'also write the summary as JSON')
    .addOption(
      new Option('--use-e2e-control-plane', 'use the control plane of a running e2e suite').hideHelp(),
    )
    .action(
      async (opts: {
        keep?: boolean;
        kubeconfig?: string;
        summaryFile?: string;
        useE2eControlPlane?: boolean;
      }) => {
        const { demoPlan, runDemo } = await import('./demo.ts');
        if (opts.kubeconfig) {
          process.stdout.write(`${demoPlan(opts.kubeconfig)}\n`);
          return;
        }
        await runDemo({
          keep: opts.keep === true,
          ...(opts.summaryFile ? { summaryFile: opts.summaryFile } : {}),
          ...(opts.useE2eControlPlane ? { controlPlane: await e2eControlPlane() } : {}),
        });
      },
    );

  const dev = program
    .command('dev')
    .description('Local control plane and PostgreSQL for development and debugging');

  dev
    .command('up')
    .description(
      'Start a real kube-apiserver (+ etcd, controller-manager) and PostgreSQL on 127.0.0.1; Ctrl-C stops them',
    )
    .option('--no-kube', 'do not start the control plane')
    .option('--no-postgres', 'do not start PostgreSQL')
    .option('--legacy-token-volumes', 'Secret-based service-account token volumes instead of projected ones')
    .option('--state-file <path>', 'also write the connection details as JSON to this file')
    .option('--pid-file <path>', 'where `dev down` finds this process', pidFile(ctx.env))
    .action(
      async (opts: {
        kube: boolean;
        postgres: boolean;
        legacyTokenVolumes?: boolean;
        stateFile?: string;
        pidFile: string;
      }) => {
        const pids = opts.pidFile;
        if (existsSync(pids)) {
          const other = Number(readFileSync(pids, 'utf8'));
          if (alive(other))
            throw new ChaperoneError(
              'conflict',
              `chaperone dev up is already running (pid ${other}); stop it with: chaperone dev down`,
            );
        }
        const t0 = Date.now();
        const log = (line: string) => process.stderr.write(`${line}\n`);
        const { startStack } = await import('./stack.ts');
        const stack = await startStack({
          kube: opts.kube,
          postgres: opts.postgres,
          ...(opts.legacyTokenVolumes ? { legacyTokenVolumes: true } : {}),
          log,
        });
        mkdirSync(dirname(pids), { recursive: true });
        writeFileSync(pids, String(process.pid));
        if (opts.stateFile)
          writeFileSync(opts.stateFile, JSON.stringify(stack.state, null, 2), { mode: 0o600 });
        const { kube, postgres } = stack.state;
        const out: string[] = [`ready in ${((Date.now() - t0) / 1000).toFixed(1)}s`];
        if (kube) {
          out.push(
            `kube-apiserver ${kube.version.gitVersion} at ${kube.server}`,
            `  export KUBECONFIG=${kube.kubeconfigPath}`,
            `  logs: ${kube.dir}`,
          );
        }
        if (postgres) out.push(`PostgreSQL ${postgres.version}`, `  psql '${postgres.url}'`);
        out.push('Press Ctrl-C to stop (or run: chaperone dev down).');
        process.stdout.write(`${out.join('\n')}\n`);

        await new Promise<void>((resolve) => {
          const done = () => resolve();
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
        process.stderr.write('stopping…\n');
        await stack.stop();
        rmSync(pids, { force: true });
        process.stderr.write('stopped\n');
      },
    );

  dev
    .command('down')
    .description('Stop a running `chaperone dev up`')
    .option('--pid-file <path>', 'the pid file `dev up` wrote', pidFile(ctx.env))
    .action(async (opts: { pidFile: string }) => {
      const pids = opts.pidFile;
      const pid = existsSync(pids) ? Number(readFileSync(pids, 'utf8')) : 0;
      if (!pid || !alive(pid)) {
        rmSync(pids, { force: true });
        process.stdout.write('nothing to stop: chaperone dev up is not running\n');
        return;
      }
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 60_000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (alive(pid))
        throw new ChaperoneError('timeout', `chaperone dev up (pid ${pid}) did not stop within 60 s`);
      process.stdout.write('stopped\n');
    });
};
