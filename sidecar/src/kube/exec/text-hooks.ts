/**
 * The filters every exec and attach session gets (the pipeline's
 * `exec.hooks`):
 *
 * - Output masking (output-masking.ts) on stdout and stderr, always: the
 *   built-in value detectors (private keys, JWTs, cloud and Git tokens) and,
 *   when the session was decided by a mask rule naming Secrets
 *   (`mask: {secrets: [...]}`), those Secrets' values. The sidecar reads
 *   them with its own credentials, in the session pod's namespace, as the
 *   session opens; a Secret that does not exist has no values to mask, and
 *   one that cannot be read refuses the session (it would open unmasked).
 *   Counts go to the session's close event (`maskedFields`) and the metrics.
 * - The input guard (line-guard.ts) when the agent's stdin carries commands:
 *   a TTY session, an attach with stdin (the attached process is not
 *   known), or a command that reads commands from stdin (stdin-reader.ts:
 *   `sh`, `python3`, `psql` …, not `sh -c 'cmd'`). TTY input is rebuilt as
 *   typed (keys pass at once, Enter waits for the decision), piped input line
 *   by line. Each line's event holds its text through a StreamMasker with
 *   the same values (a password typed at a prompt that does not echo is still
 *   a line).
 */
import type { Logger, SelfProtection } from '@chaperone/shared';
import type { AuditRecorder, ExecLineRecord } from '../../audit/recorder.ts';
import type { Spool } from '../../audit/spool.ts';
import { type StdinMode, StreamMasker } from '../../exec-text/index.ts';
import type { SidecarMetrics } from '../../metrics.ts';
import type { PolicyStore } from '../../policy-store.ts';
import type { KubeRequestContext } from '../context.ts';
import type { Upstream } from '../upstream.ts';
import { type JudgedLine, LineGuard, refusalText } from './line-guard.ts';
import { OutputMasking } from './output-masking.ts';
import { readSecretValues } from './secret-values.ts';
import { type SessionHooks, SessionRefusedError } from './session-hooks.ts';
import { readsCommandsFromStdin } from './stdin-reader.ts';

/** The rule masked-field metrics of the built-in detectors are counted under. */
export const OUTPUT_DETECTORS_RULE = 'chaperone-mask-exec-output';

export interface ExecTextDeps {
  readonly policy: PolicyStore;
  readonly protection: SelfProtection;
  readonly recorder: AuditRecorder;
  readonly spool: Spool;
  readonly upstream: Upstream;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  /** For reading the Secrets a mask rule names. */
  readonly timeoutMs: number;
  /** Lines whose event cannot be kept still go. */
  readonly failOpen: boolean;
  /** See output-masking.ts (default 20 ms). */
  readonly idleMs?: number;
  /** How TTY input is guarded: `tty` (default; keys echo as typed) or `tty-hold` (exec-text/stdin-filter.ts). */
  readonly ttyMode?: Extract<StdinMode, 'tty' | 'tty-hold'>;
}

export function execTextHooks(d: ExecTextDeps): (ctx: KubeRequestContext) => Promise<SessionHooks> {
  return async (ctx) => {
    const action = ctx.action;
    const exec = action?.exec;
    if (!action || !exec) return {};
    const values = await secretValues(d, ctx);
    const secretRule = ctx.decision?.rule ?? 'default';
    const output = new OutputMasking({
      values,
      ...(d.idleMs !== undefined ? { idleMs: d.idleMs } : {}),
      onMasked: (kind, n) => {
        // The close event is built from the request's context.
        ctx.maskedFields += n;
        d.metrics.maskedFields.inc(
          { protocol: 'exec', rule: kind === 'secret' ? secretRule : OUTPUT_DETECTORS_RULE },
          n,
        );
      },
    });
    if (!guardsInput(exec)) return { output };
    const mask = (text: string): { text: string; masked: number } => maskText(values, text);
    const input = new LineGuard({
      mode: exec.tty ? (d.ttyMode ?? 'tty') : 'piped',
      action,
      policy: () => d.policy.current,
      protection: d.protection,
      failOpen: d.failOpen,
      record: (judged) => {
        if (!d.failOpen && !d.spool.hasCapacity()) return false;
        return d.recorder.recordExecLine(ctx, lineRecord(judged, mask));
      },
    });
    return { output, input };
  };
}

/** Whether the session's stdin carries commands (see the file's comment). */
export function guardsInput(exec: {
  kind: string;
  argv: readonly string[];
  tty?: boolean;
  stdin?: boolean;
}): boolean {
  if (exec.stdin !== true) return false;
  return exec.tty === true || exec.kind === 'attach' || readsCommandsFromStdin(exec.argv);
}

function lineRecord(j: JudgedLine, mask: (text: string) => { text: string; masked: number }): ExecLineRecord {
  const text = mask(j.line.text);
  let maskedFields = text.masked;
  const others = j.line.readings.filter((r) => r !== j.line.text);
  const readings = others.map((r) => {
    const m = mask(r);
    maskedFields += m.masked;
    return m.text;
  });
  return {
    text: text.text,
    ...(readings.length > 0 ? { readings } : {}),
    ...(j.line.reason !== undefined ? { problem: j.line.reason } : {}),
    decision: j.decision,
    ...(j.forwarded ? {} : { refusal: refusalText(j.decision) }),
    maskedFields,
    latencyMs: j.latencyMs,
  };
}

/** `text` with secrets masked, and how many were. */
export function maskText(values: readonly Buffer[], text: string): { text: string; masked: number } {
  const m = new StreamMasker({ values });
  const out = Buffer.concat([m.push(Buffer.from(text, 'utf8')), m.end()]).toString('utf8');
  let masked = 0;
  for (const n of Object.values(m.masked)) masked += n;
  return { text: out, masked };
}

/** The values of the Secrets the session's mask rule names (secret-values.ts), or the session is refused. */
async function secretValues(d: ExecTextDeps, ctx: KubeRequestContext): Promise<Buffer[]> {
  const names = ctx.decision?.maskSecrets ?? [];
  const namespace = ctx.info?.namespace;
  if (names.length === 0 || namespace === undefined) return [];
  const rule = ctx.decision?.rule ?? '';
  const read = await readSecretValues(d, ctx, namespace, names, rule);
  if (Array.isArray(read)) return read;
  throw new SessionRefusedError(
    503,
    'ServiceUnavailable',
    `chaperone: rule "${rule}" masks the values of Secret ${read.secret} in this session's output, and the Secret could not be read (${read.why}); the session is refused rather than opened unmasked. Check that the sidecar's service account may get Secrets in namespace ${namespace}`,
  );
}
