/**
 * The input filter that judges what an agent types into a shell or another
 * interpreter, line by line, before the line can run (exec-text's
 * StdinFilter rebuilds the lines; this decides them and answers refusals).
 *
 * Each reading of a line (StdinFilter gives every way the program may read
 * it) is read as a shell line (shell-line.ts) and judged by the policy as exec
 * actions of the session with another argv: one per simple command the line
 * runs, and one for the whole line (its words from the first program on), so
 * `argv0` rules see every program and `commands` regexes see each command and
 * the line; each wrapper's own argv is judged too (exec-decision.ts). The most restrictive decision wins; a review is refused (no
 * approval service). Before the policy, two built-in rules:
 * - `chaperone-unreadable-input`: the line cannot be known from the keys
 *   (history, completion, …) — StdinFilter refuses those itself — or it
 *   ends inside an open quote, substitution or parenthesis (the shell would
 *   read the next line, judged alone, as part of it);
 * - `chaperone-no-line-editor-changes`: the line changes how keys are read
 *   (shell-line.ts lineEditorChange).
 *
 * A refused line never runs. With a TTY the pod gets CANCEL_LINE instead of
 * its Enter and the agent's terminal the rule's message; piped, the message
 * goes to stderr and the pod's stdin ends there (`endStdin`).
 *
 * Every judged line is one audit event (`record`); a line whose event cannot
 * be written is refused, unless the sidecar fails open.
 */
import type { Action, CompiledPolicy, Decision, SelfProtection } from '@chaperone/shared';
import { type InputLine, StdinFilter, type StdinMode, type StdinResult } from '../../exec-text/index.ts';
import { decideArgvs, moreRestrictive } from './exec-decision.ts';
import type { InputFilter, InputResult, InputSummary } from './session-hooks.ts';
import { lineEditorChange, readShellLine } from './shell-line.ts';

export const UNREADABLE_INPUT_RULE = 'chaperone-unreadable-input';
export const LINE_EDITOR_RULE = 'chaperone-no-line-editor-changes';

/** What a judged line's audit event holds. */
export interface JudgedLine {
  readonly line: InputLine;
  readonly decision: Decision;
  /** The line went to the pod. */
  readonly forwarded: boolean;
  /** Time taken to judge it, in ms. */
  readonly latencyMs: number;
}

export interface LineGuardOptions {
  readonly mode: StdinMode;
  /** The session's action: each line is judged as it with the line's argv. */
  readonly action: Action;
  readonly policy: () => CompiledPolicy;
  readonly protection: SelfProtection;
  /** Writes the line's audit event; false when it could not be written. */
  readonly record: (judged: JudgedLine) => boolean;
  /** Lines whose event cannot be written still go (fail-open). */
  readonly failOpen: boolean;
}

interface Verdict {
  readonly allow: boolean;
  readonly decision: Decision;
}

/** What the agent is told about a refused line. */
export function refusalText(d: Decision): string {
  return d.action === 'review'
    ? `chaperone: rule "${d.rule}" requires a human's approval (${d.message}), and a line typed into a session is not held for approval; the line is refused (run the command as its own kubectl exec to have it reviewed)`
    : `chaperone: denied by rule "${d.rule}": ${d.message}`;
}

export class LineGuard implements InputFilter {
  readonly #o: LineGuardOptions;
  readonly #filter: StdinFilter<Verdict>;
  #evaluated = 0;
  #denied = 0;

  constructor(o: LineGuardOptions) {
    this.#o = o;
    this.#filter = new StdinFilter<Verdict>({ mode: o.mode, decide: (line) => this.#decide(line) });
  }

  push(chunk: Buffer): InputResult {
    return this.#answer(this.#filter.push(chunk));
  }

  end(): InputResult {
    return this.#answer(this.#filter.end());
  }

  summary(): InputSummary {
    return { linesEvaluated: this.#evaluated, linesDenied: this.#denied };
  }

  #answer(r: StdinResult<Verdict>): InputResult {
    const refused: string[] = [];
    for (const l of r.lines) {
      this.#evaluated++;
      if (l.forwarded) continue;
      this.#denied++;
      refused.push(refusalText(l.decision.decision));
    }
    if (refused.length === 0) return { toPod: r.forward };
    if (this.#o.mode === 'piped') {
      const why = refused[0] as string;
      const text = `${refused.join('\n')}\nchaperone: the command's stdin ends here: the input after a refused line is not delivered\n`;
      return { toPod: r.forward, toAgent: Buffer.from(text), ...(r.closeStdin ? { endStdin: why } : {}) };
    }
    return { toPod: r.forward, toAgent: Buffer.from(`\r\n${refused.join('\r\n')}\r\n`) };
  }

  #decide(line: InputLine): Verdict {
    const started = performance.now();
    const decision = line.readable ? this.#judge(line.readings) : unreadable(line);
    const allow = decision.action === 'allow' || decision.action === 'mask';
    const forwarded = allow && line.readable;
    const latencyMs = performance.now() - started;
    if (this.#o.record({ line, decision, forwarded, latencyMs }) || this.#o.failOpen || !forwarded) {
      return { allow, decision };
    }
    const refusal: Decision = {
      action: 'deny',
      rule: 'chaperone-audit-unavailable',
      reason: 'self_protection',
      message:
        "the line's audit event could not be written to the spool, and unrecorded commands are not allowed; check the sidecar's spool volume and the collector",
    };
    return { allow: false, decision: refusal };
  }

  /** The most restrictive decision over every reading and every command in it. */
  #judge(readings: readonly string[]): Decision {
    const policy = this.#o.policy();
    const exec = this.#o.action.exec;
    let worst: Decision | undefined;
    for (const reading of readings) {
      if (reading.trim() === '') continue;
      const read = readShellLine(reading);
      if (read.history && this.#o.mode !== 'piped') {
        // An interactive bash replaces `!!`, `!$`, `!:1*` … with words of earlier lines before it runs the line.
        return unreadable({
          reason: 'a "!" that bash history-expands (write it as \\! or inside single quotes)',
        });
      }
      if (read.unterminated) {
        // The shell reads on into the next line, which is judged alone: `ls '` then `ls ' ; rm -r /x` runs rm.
        return unreadable({
          reason:
            'it ends inside an open quote, substitution or parenthesis, so the shell reads the next line as part of it',
        });
      }
      const change = lineEditorChange(reading, read);
      if (change !== undefined) {
        return {
          action: 'deny',
          rule: LINE_EDITOR_RULE,
          reason: 'self_protection',
          message: `lines that change how keys are read (key bindings, the editing mode, stty, inputrc) are refused; this one has ${change}. The guard rebuilds each line as the default line editor and terminal read it, and could no longer tell what a line runs`,
        };
      }
      // Wrappers' own argvs too: a rule on `sudo` applies to `sudo rm x` (whose command is rm).
      const argvs =
        read.commands.length > 0
          ? [read.words, ...read.commands, ...read.wrappers]
          : [reading.trim().split(/\s+/), ...read.wrappers];
      const action: Action = { ...this.#o.action, exec: { kind: 'exec', ...exec, argv: [] } };
      const d = decideArgvs(action, argvs, policy, this.#o.protection);
      if (d === undefined) continue;
      worst = moreRestrictive(worst, d);
      if (d.action === 'deny') return d;
    }
    return (
      worst ?? {
        action: 'allow',
        rule: 'default',
        reason: 'policy_default',
        message: 'a blank line runs nothing',
      }
    );
  }
}

function unreadable(line: Pick<InputLine, 'reason'>): Decision {
  return {
    action: 'deny',
    rule: UNREADABLE_INPUT_RULE,
    reason: 'self_protection',
    message: `the guard cannot tell what this line runs (${line.reason ?? 'unreadable'}); type the line out in full, without history, completion or editing keys the guard does not follow`,
  };
}
