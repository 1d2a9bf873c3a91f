/**
 * kubeconfig `exec` credential plugins (client.authentication.k8s.io
 * ExecCredential, as used by EKS, GKE and AKS kubeconfigs): the command is run
 * with KUBERNETES_EXEC_INFO, its token is cached until shortly before its
 * expirationTimestamp, and client certificates it returns are used for TLS.
 */
import { spawnSync } from 'node:child_process';
import { isAbsolute, join } from 'node:path';
import { ConfigError } from '@chaperone/shared';

export interface ExecConfig {
  readonly command: string;
  readonly args?: readonly string[];
  readonly env?: readonly { name: string; value: string }[] | null;
  readonly apiVersion?: string;
  readonly installHint?: string;
}

export interface ExecResult {
  readonly token?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  /** ms since the epoch; undefined when the credential does not expire. */
  readonly expiresAt?: number;
}

export function runExecCredential(
  cfg: ExecConfig,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
): ExecResult {
  const apiVersion = cfg.apiVersion ?? 'client.authentication.k8s.io/v1beta1';
  const command =
    cfg.command.includes('/') && !isAbsolute(cfg.command) ? join(baseDir, cfg.command) : cfg.command;
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;
  for (const e of cfg.env ?? []) childEnv[e.name] = e.value;
  childEnv.KUBERNETES_EXEC_INFO = JSON.stringify({
    apiVersion,
    kind: 'ExecCredential',
    spec: { interactive: false },
  });
  const r = spawnSync(command, [...(cfg.args ?? [])], { env: childEnv, encoding: 'utf8', timeout: 60_000 });
  if (r.error) {
    throw new ConfigError(
      `the kubeconfig's credential plugin "${cfg.command}" could not run: ${r.error.message}${cfg.installHint ? ` (${cfg.installHint.trim()})` : ''}`,
    );
  }
  if (r.status !== 0) {
    throw new ConfigError(
      `the kubeconfig's credential plugin "${cfg.command}" failed (${r.status}): ${r.stderr.trim().slice(0, 500)}`,
    );
  }
  let cred: {
    status?: {
      token?: string;
      clientCertificateData?: string;
      clientKeyData?: string;
      expirationTimestamp?: string;
    };
  };
  try {
    cred = JSON.parse(r.stdout);
  } catch {
    throw new ConfigError(
      `the kubeconfig's credential plugin "${cfg.command}" did not print an ExecCredential`,
    );
  }
  const s = cred.status ?? {};
  if (!s.token && !s.clientCertificateData) {
    throw new ConfigError(
      `the kubeconfig's credential plugin "${cfg.command}" returned neither a token nor a client certificate`,
    );
  }
  const expires = s.expirationTimestamp ? Date.parse(s.expirationTimestamp) : Number.NaN;
  return {
    ...(s.token ? { token: s.token } : {}),
    ...(s.clientCertificateData
      ? { clientCert: s.clientCertificateData, clientKey: s.clientKeyData ?? '' }
      : {}),
    ...(Number.isFinite(expires) ? { expiresAt: expires } : {}),
  };
}

/** A token source that re-runs the plugin shortly before the token expires. */
export function execTokenSource(
  cfg: ExecConfig,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  first: ExecResult,
): () => string | undefined {
  let current = first;
  return () => {
    if (current.expiresAt !== undefined && Date.now() > current.expiresAt - 30_000) {
      current = runExecCredential(cfg, baseDir, env);
    }
    return current.token;
  };
}
