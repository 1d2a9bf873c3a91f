/**
 * `chaperone sidecar` and the operator verbs `chaperone policy lint|test`.
 * Registering is cheap: each action imports what it runs (the proxy, pino, the
 * policy parser), so one command does not load the others' code.
 */
import { readFileSync } from 'node:fs';
import {
  type Action,
  ChaperoneError,
  type RegisterCommands,
  UsageError,
  withConfigOptions,
} from '@chaperone/shared';
import { sidecarSchema } from './config.ts';
import { registerLocal } from './local/cli.ts';

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

export const register: RegisterCommands = (program, ctx) => {
  const sidecar = program
    .command('sidecar')
    .description('Per-pod guard: proxies the Kubernetes API, enforces policy, masks, records audit events');
  const configFrom = withConfigOptions(sidecar, sidecarSchema, ctx);
  sidecar.action(async (opts: Record<string, unknown>) => {
    const config = configFrom(opts);
    const [{ createLogger }, { runSidecar }] = await Promise.all([
      import('@chaperone/shared/logger'),
      import('./main.ts'),
    ]);
    const log = createLogger({
      name: 'sidecar',
      level: config.logLevel,
      base: { pod: `${config.podNamespace}/${config.podName}` },
    });
    const running = await runSidecar(config, log, ctx.env);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    log.info('stopping');
    await running.stop();
  });

  const policy = program.command('policy').description('Check guardrail policies offline');
  policy
    .command('lint')
    .description('Validate a GuardrailPolicy file; exits 1 and says where the problem is when it is invalid')
    .argument('<file>', 'policy YAML')
    .action(async (file: string) => {
      const { parsePolicy, PolicyError } = await import('@chaperone/shared/policy');
      try {
        const p = parsePolicy(readFile(file, 'policy file'));
        process.stdout.write(
          `ok: policy "${p.name}" with ${p.rules.length} rule(s), default ${p.defaultAction}\n`,
        );
      } catch (err) {
        if (err instanceof PolicyError) {
          process.stderr.write(`${file}: ${err.message}\n`);
          process.exitCode = 1;
          return;
        }
        throw err;
      }
    });

  policy
    .command('test')
    .description('Show the decision a policy makes for a request')
    .argument('<file>', 'policy YAML')
    .argument('[request...]', 'the request, as for --request (e.g. sql orders "DROP TABLE x")')
    .option(
      '-r, --request <request>',
      'e.g. "delete namespaces prod", "GET /api/v1/namespaces/a/secrets", "exec agent-0 -- rm -rf /", "sql orders DROP TABLE x"',
    )
    .option('-f, --request-file <file>', 'YAML/JSON file with an Action or a list of Actions')
    .option(
      '--namespace <ns>',
      'namespace of the guarded pod (for the built-in self-protection rules)',
      'default',
    )
    .option('--policy-configmap <name>', 'name of the protected policy ConfigMap', 'chaperone-policy')
    .option('--sidecar-container <name>', 'name of the sidecar container', 'chaperone-sidecar')
    .option('--user <name>', 'the identity requests act as')
    .option('--expect <action>', 'exit 1 unless every decision is this action (allow, deny, mask, review)')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(
      async (
        file: string,
        request: string[],
        opts: {
          request?: string;
          requestFile?: string;
          namespace: string;
          policyConfigmap: string;
          sidecarContainer: string;
          user?: string;
          expect?: string;
          output: string;
        },
      ) => {
        if (!opts.request && !opts.requestFile && request.length === 0)
          throw new UsageError('give the request, --request "<request>" or --request-file <file>');
        if (opts.output !== 'text' && opts.output !== 'json')
          throw new UsageError('--output must be text or json');
        if (opts.expect && !['allow', 'deny', 'mask', 'review'].includes(opts.expect)) {
          throw new UsageError('--expect must be allow, deny, mask or review');
        }
        const [
          { evaluate, parsePolicy, PolicyError },
          { parseRequestFile, parseRequest },
          { reviewSummary },
        ] = await Promise.all([
          import('@chaperone/shared/policy'),
          import('./policy-request.ts'),
          import('./review/review-outcome.ts'),
        ]);
        let p: ReturnType<typeof parsePolicy>;
        try {
          p = parsePolicy(readFile(file, 'policy file'));
        } catch (err) {
          if (err instanceof PolicyError)
            throw new ChaperoneError('policy_invalid', `${file}: ${err.message}`);
          throw err;
        }
        const actions: Action[] = [];
        if (opts.request) actions.push(await parseRequest(opts.request, opts.user));
        if (request.length > 0) actions.push(await parseRequest(request.join(' '), opts.user));
        if (opts.requestFile) actions.push(...parseRequestFile(readFile(opts.requestFile, 'request file')));
        const protection = {
          namespace: opts.namespace,
          policyConfigMaps: [opts.policyConfigmap],
          sidecarContainer: opts.sidecarContainer,
        };
        let mismatch = false;
        for (const action of actions) {
          const d = evaluate(action, p, protection);
          if (opts.expect && d.action !== opts.expect) mismatch = true;
          if (opts.output === 'json') {
            process.stdout.write(`${JSON.stringify({ request: action, decision: d })}\n`);
          } else {
            process.stdout.write(
              `${d.action.toUpperCase()}  rule=${d.rule}  reason=${d.reason}\n  ${d.message}\n`,
            );
            if (d.review) process.stdout.write(`  ${reviewSummary(d.review)}\n`);
            for (const [i, s] of (action.sql?.statements ?? []).entries()) {
              const facts = [
                `kinds ${(s.kinds ?? []).join(',') || '-'}`,
                s.tables.length ? `tables ${s.tables.join(',')}` : '',
                s.schemas?.length ? `schemas ${s.schemas.join(',')}` : '',
                s.functions?.length ? `functions ${s.functions.join(',')}` : '',
                s.problem ? `unreadable: ${s.problem}` : '',
              ].filter(Boolean);
              process.stdout.write(`  statement ${i + 1}: ${s.kind}  ${facts.join('  ')}\n`);
            }
          }
        }
        if (mismatch) {
          process.stderr.write(`expected every decision to be ${opts.expect}\n`);
          process.exitCode = 1;
        }
      },
    );
  registerLocal(program, ctx);
};
