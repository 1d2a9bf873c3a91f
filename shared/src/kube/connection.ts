/**
 * Where a Kubernetes API server is and how to authenticate to it: the result
 * of reading a kubeconfig or the in-cluster service account, and all a
 * KubeClient needs. Credentials are asked for before every request, so a
 * source can rotate them (token files re-read, exec plugins re-run on expiry).
 */

/** What goes with one request: a bearer token, a client certificate, or both. */
export interface KubeCredentials {
  readonly token?: string;
  /** PEM client certificate (chain) and its PEM key, for TLS client authentication. */
  readonly clientCert?: string;
  readonly clientKey?: string;
}

export interface CredentialSource {
  /** The credentials to use now; cheap to call (sources cache). */
  current(): KubeCredentials | Promise<KubeCredentials>;
  /** The API server refused the credentials (HTTP 401): fetch fresh ones next time. */
  refused?(): void;
}

export interface KubeConnection {
  /** `https://host:port`, no trailing slash. */
  readonly server: string;
  /** PEM CA bundle to trust; the system's roots when absent. */
  readonly ca?: string;
  readonly insecureSkipTlsVerify?: boolean;
  /** Name to send as SNI and to check the server's certificate against, instead of the host. */
  readonly tlsServerName?: string;
  readonly credentials: CredentialSource;
  /** The namespace of the kubeconfig context or of the in-cluster pod, when known. */
  readonly namespace?: string;
  /** The kubeconfig context it was read from, when it came from a kubeconfig. */
  readonly context?: string;
  /** Where this came from, for messages (never a secret). */
  readonly source: string;
}

/** Credentials that never change (a kubeconfig's inline token or certificate, tests). */
export function fixedCredentials(credentials: KubeCredentials = {}): CredentialSource {
  const frozen = Object.freeze({ ...credentials });
  return { current: () => frozen };
}
