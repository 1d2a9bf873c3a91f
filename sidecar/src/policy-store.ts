/**
 * The policy in force. Read from a mounted file (a ConfigMap volume, which is
 * updated by swapping a symlink), checked for changes on an interval, parsed
 * and validated; a bad edit is rejected with a logged error and a metric and
 * the last good policy stays. With no valid policy at all (missing or invalid
 * at start) every request is denied, never allowed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  type CompiledPolicy,
  compilePolicy,
  denyAllPolicy,
  type Logger,
  PolicyError,
  parsePolicy,
} from '@chaperone/shared';

export type PolicyState = 'loaded' | 'missing' | 'invalid';

export interface PolicyStoreHooks {
  onReload?: (result: 'success' | 'failure' | 'missing', state: PolicyState) => void;
}

export class PolicyStore {
  readonly #file: string;
  readonly #log: Logger;
  readonly #hooks: PolicyStoreHooks;
  #current: CompiledPolicy;
  #state: PolicyState = 'missing';
  #hash = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(file: string, log: Logger, hooks: PolicyStoreHooks = {}) {
    this.#file = file;
    this.#log = log;
    this.#hooks = hooks;
    this.#current = compilePolicy(denyAllPolicy('not loaded yet'));
    this.reload();
  }

  get current(): CompiledPolicy {
    return this.#current;
  }

  /** `loaded`: a valid policy from the file is in force (possibly an older one after a bad edit). */
  get state(): PolicyState {
    return this.#state;
  }

  /** Checks the file now; returns whether the policy in force changed. */
  reload(): boolean {
    let text: string;
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (this.#state === 'loaded') {
        // A ConfigMap deleted under a running pod: keep enforcing what we had.
        if (this.#hash !== 'missing') {
          this.#log.error(
            { file: this.#file, code },
            'the policy file disappeared; the last good policy stays in force',
          );
          this.#hash = 'missing';
          this.#hooks.onReload?.('missing', this.#state);
        }
        return false;
      }
      if (this.#hash !== 'missing') {
        this.#hash = 'missing';
        this.#current = compilePolicy(denyAllPolicy(`policy file ${this.#file} is missing`));
        this.#state = 'missing';
        this.#log.error(
          { file: this.#file, code },
          'no policy file: every request is denied until a valid policy is mounted',
        );
        this.#hooks.onReload?.('missing', this.#state);
      }
      return false;
    }
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === this.#hash) return false;
    this.#hash = hash;
    try {
      const policy = parsePolicy(text);
      this.#current = compilePolicy(policy);
      const first = this.#state !== 'loaded';
      this.#state = 'loaded';
      this.#log.info(
        { file: this.#file, policy: policy.name, rules: policy.rules.length, sha256: hash.slice(0, 12) },
        first ? 'policy loaded' : 'policy reloaded',
      );
      this.#hooks.onReload?.('success', this.#state);
      return true;
    } catch (err) {
      const message = err instanceof PolicyError ? err.message : (err as Error).message;
      if (this.#state === 'loaded') {
        this.#log.error(
          { file: this.#file, error: message },
          'policy edit rejected; the last good policy stays in force',
        );
      } else {
        this.#state = 'invalid';
        this.#current = compilePolicy(denyAllPolicy(`policy file ${this.#file} is invalid: ${message}`));
        this.#log.error(
          { file: this.#file, error: message },
          'invalid policy: every request is denied until it is fixed',
        );
      }
      this.#hooks.onReload?.('failure', this.#state);
      return false;
    }
  }

  watch(intervalMs: number): void {
    this.stop();
    this.#timer = setInterval(() => this.reload(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
