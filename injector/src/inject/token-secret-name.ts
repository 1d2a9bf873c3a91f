/**
 * The name the token controller gives a service account's legacy token
 * Secret: `<serviceaccount>-token-<5 random characters>` (Kubernetes < 1.24,
 * or BoundServiceAccountTokenVolume off).
 */
const SUFFIX = /^-token-[a-z0-9]{5}$/;

export function isTokenSecretName(secretName: string, serviceAccount: string): boolean {
  return secretName.startsWith(serviceAccount) && SUFFIX.test(secretName.slice(serviceAccount.length));
}
