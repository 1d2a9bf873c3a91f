/**
 * kubeconfig `exec` credential plugins (client.authentication.k8s.io/v1 and
 * v1beta1 ExecCredential, as EKS, GKE and AKS kubeconfigs use): the command
 * runs with the process environment plus the kubeconfig's `env`, and
 * KUBERNETES_EXEC_INFO describing the request (and the cluster, with
 * `provideClusterInfo`). It prints an ExecCredential whose token or client
 * certificate is used until shortly before its `expirationTimestamp` (for
 * good when there is none), or until the API server refuses it — as
 * client-go does. The plugin runs when credentials are first needed, never
 * twice at once, and without blocking the event loop.
 */
import { spawn } from 'node:child_process';
import { isAbsolute, join } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { CredentialSource, KubeCredentials } from './connection.ts';

export interface ExecConfig {
  readonly command: string;
  readonly args?: readonly string[] | null;
  readonly env?: readonly { readonly name: string; readonly value: string }[] | null;
  readonly apiVersion?: string;
  readonly installHint?: string;
  /** v1: Never, IfAvailable or Always. Chaperone never has a terminal to offer. */
  readonly interactiveMode?: string;
  readonly provideClusterInfo?: boolean;
}

/** The cluster as ExecCredential `spec.cluster` describes it (sent with `provideClusterInfo`). */
export interface ExecClusterInfo {
  readonly server: string;
  readonly 'tls-server-name'?: string;
  readonly 'insecure-skip-tls-verify'?: boolean;
  /** base64 of the PEM CA bundle. */
  readonly 'certificate-authority-data'?: string;
  /** The cluster's `extensions` entry named `client.authentication.k8s.io/exec`. */
  readonly config?: unknown;
}

export interface ExecCredentialOptions {
  /** Directory of the kubeconfig that names the plugin: a relative command with a `/` is found there. */
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cluster?: ExecClusterInfo;
  /** Clock, for tests. */
  readonly now?: () => number;
  /** Longest the plugin may run; default one minute. */
  readonly timeoutMs?: number;
}

export interface ExecResult extends KubeCredentials {
  /** ms since the epoch; undefined when the credential does not expire. */
  readonly expiresAt?: number;
}

const API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
/** A credential this close to its expiry is fetched anew (requests take time, clocks drift). */
const EXPIRY_MARGIN_MS = 30_000;
const MAX_OUTPUT_BYTES = 1 << 20;

function pluginError(cfg: ExecConfig, what: string): ConfigError {
  return new ConfigError(`the kubeconfig's credential plugin "${cfg.command}" ${what}`);
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly tooMuch: boolean;
}

function run(command: string, args: readonly string[], env: Record<string, string>, timeoutMs: number) {
  return new Promise<Exit>((resolve, reject) => {
    // No stdin: the plugin must not wait for a person (spec.interactive is false).
    const child = spawn(command, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    // Our own timer rather than spawn's `timeout`, whose timer outlives a command that never started.
    const timer = setTimeout(() => child.kill(), timeoutMs);
    const outChunks: Buffer[] = [];
    const errChunks: Buffer[] = [];
    let size = 0;
    let tooMuch = false;
    const collect = (into: Buffer[]) => (c: Buffer) => {
      size += c.length;
      if (size <= MAX_OUTPUT_BYTES) into.push(c);
      else if (!tooMuch) {
        tooMuch = true;
        child.kill();
      }
    };
    child.stdout.on('data', collect(outChunks));
    child.stderr.on('data', collect(errChunks));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(outChunks).toString('utf8'),
        stderr: Buffer.concat(errChunks).toString('utf8'),
        tooMuch,
      });
    });
  });
}

/** Runs the plugin once and reads its ExecCredential. */
export async function runExecCredential(cfg: ExecConfig, opts: ExecCredentialOptions): Promise<ExecResult> {
  const apiVersion = cfg.apiVersion ?? 'client.authentication.k8s.io/v1beta1';
  if (!API_VERSIONS.includes(apiVersion))
    throw pluginError(cfg, `asks for ${apiVersion}; supported: ${API_VERSIONS.join(', ')}`);
  if (cfg.interactiveMode === 'Always')
    throw pluginError(cfg, 'needs a terminal (interactiveMode: Always), which Chaperone never has');
  const command =
    cfg.command.includes('/') && !isAbsolute(cfg.command) ? join(opts.baseDir, cfg.command) : cfg.command;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env)) if (v !== undefined) env[k] = v;
  for (const e of cfg.env ?? []) env[e.name] = e.value;
  env.KUBERNETES_EXEC_INFO = JSON.stringify({
    apiVersion,
    kind: 'ExecCredential',
    spec: {
      interactive: false,
      ...(cfg.provideClusterInfo && opts.cluster ? { cluster: opts.cluster } : {}),
    },
  });
  let exit: Exit;
  try {
    exit = await run(command, cfg.args ?? [], env, opts.timeoutMs ?? 60_000);
  } catch (err) {
    const hint = cfg.installHint ? ` (${cfg.installHint.trim()})` : '';
    throw pluginError(cfg, `could not run: ${(err as Error).message}${hint}`);
  }
  if (exit.tooMuch) throw pluginError(cfg, `printed more than ${MAX_OUTPUT_BYTES} bytes`);
  if (exit.code !== 0) {
    const how = exit.signal ? `was stopped (${exit.signal})` : `failed (${exit.code})`;
    throw pluginError(cfg, `${how}: ${exit.stderr.trim().slice(0, 500)}`);
  }
  let cred: {
    apiVersion?: unknown;
    kind?: unknown;
    status?: {
      token?: string;
      clientCertificateData?: string;
      clientKeyData?: string;
      expirationTimestamp?: string;
    };
  };
  try {
    cred = JSON.parse(exit.stdout);
  } catch {
    throw pluginError(cfg, 'did not print an ExecCredential');
  }
  if (cred?.kind !== 'ExecCredential') throw pluginError(cfg, 'did not print an ExecCredential');
  if (cred.apiVersion !== apiVersion)
    throw pluginError(cfg, `answered ${String(cred.apiVersion)}; the kubeconfig asks for ${apiVersion}`);
  const s = cred.status ?? {};
  if (!s.token && !s.clientCertificateData)
    throw pluginError(cfg, 'returned neither a token nor a client certificate');
  if (Boolean(s.clientCertificateData) !== Boolean(s.clientKeyData))
    throw pluginError(cfg, 'returned a client certificate without its key, or a key without a certificate');
  const expires = s.expirationTimestamp ? Date.parse(s.expirationTimestamp) : Number.NaN;
  if (s.expirationTimestamp && !Number.isFinite(expires))
    throw pluginError(cfg, `returned an unreadable expirationTimestamp "${s.expirationTimestamp}"`);
  return {
    ...(s.token ? { token: s.token } : {}),
    ...(s.clientCertificateData ? { clientCert: s.clientCertificateData, clientKey: s.clientKeyData } : {}),
    ...(Number.isFinite(expires) ? { expiresAt: expires } : {}),
  };
}

/** Credentials from a plugin, cached until shortly before they expire or are refused. */
export function execCredentials(cfg: ExecConfig, opts: ExecCredentialOptions): CredentialSource {
  const now = opts.now ?? Date.now;
  let cached: ExecResult | undefined;
  let running: Promise<ExecResult> | undefined;
  return {
    current() {
      if (cached && (cached.expiresAt === undefined || now() < cached.expiresAt - EXPIRY_MARGIN_MS))
        return cached;
      running ??= runExecCredential(cfg, opts)
        .then((r) => {
          cached = r;
          return r;
        })
        .finally(() => {
          running = undefined;
        });
      return running;
    },
    refused() {
      cached = undefined;
    },
  };
}
