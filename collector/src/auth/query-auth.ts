/**
 * Authentication of the query API. Either a static bearer token (the
 * embedded default; compared in constant time) or OIDC: a JWT verified with
 * jose against the issuer's published keys (discovered from
 * `<issuer>/.well-known/openid-configuration`), with issuer and audience
 * pinned and, optionally, membership of an allowed group.
 *
 * Every principal carries the namespaces it may read (http-api.ts enforces
 * them on every route). A single static token reads every namespace; a
 * tokens file (`--query-tokens-file`) gives each token its own list, and a
 * group namespaces file (`--oidc-group-namespaces`) each OIDC group its own.
 * Kubernetes identities, scoped by RBAC, are added in front of these by
 * reader-auth.ts (--query-rbac).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ChaperoneError } from '@chaperone/shared';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import { AuthError } from './sidecar-identity.ts';

/** The namespaces a principal may read: every one, or exactly these. */
export type NamespaceScope = '*' | ReadonlySet<string>;

export interface Principal {
  /** Who asked, for the access log: `static-token`, the token's name, or the OIDC subject. */
  readonly subject: string;
  readonly namespaces: NamespaceScope;
  /** OIDC: the groups the token's groups claim lists. */
  readonly groups?: readonly string[];
  /** OIDC with `usernameClaim`: that claim's value, unprefixed. */
  readonly username?: string;
  /**
   * How the caller proved who it is: a configured query token, an OIDC ID
   * token, or a Kubernetes token the API server accepted (reader-auth.ts).
   */
  readonly via?: 'static' | 'oidc' | 'tokenreview';
}

export function inScope(scope: NamespaceScope, namespace: string): boolean {
  return scope === '*' || scope.has(namespace);
}

export interface QueryAuthenticator {
  authenticate(authorization: string | undefined): Promise<Principal>;
}

export function bearer(authorization: string | undefined): string {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!m) throw new AuthError('unauthenticated', 'send a bearer token: Authorization: Bearer <token>');
  return m[1] as string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface ScopedToken {
  readonly token: string;
  /** Names the token in the access log (never the token itself). */
  readonly name: string;
  readonly namespaces: NamespaceScope;
}

/**
 * Bearer tokens, each with its own namespaces. The presented token is
 * compared (as SHA-256 digests, in constant time) with every configured one,
 * so the time taken says nothing about which or how many matched.
 */
export function scopedTokenAuth(tokens: readonly ScopedToken[]): QueryAuthenticator {
  if (tokens.length === 0) throw new ChaperoneError('config_invalid', 'no query tokens are configured');
  const names = new Set<string>();
  const digests = new Set<string>();
  for (const t of tokens) {
    if (t.token.length < 16)
      throw new ChaperoneError('config_invalid', `the query token ${t.name} must be at least 16 characters`);
    if (names.has(t.name)) throw new ChaperoneError('config_invalid', `two query tokens are named ${t.name}`);
    const d = digest(t.token).toString('hex');
    if (digests.has(d))
      throw new ChaperoneError('config_invalid', `the query token ${t.name} is listed twice`);
    names.add(t.name);
    digests.add(d);
  }
  const entries = tokens.map((t) => ({ want: digest(t.token), name: t.name, namespaces: t.namespaces }));
  return {
    async authenticate(authorization) {
      const got = digest(bearer(authorization));
      let found: (typeof entries)[number] | undefined;
      for (const e of entries) if (timingSafeEqual(got, e.want) && !found) found = e;
      if (!found) throw new AuthError('unauthenticated', 'the token is not valid for this collector');
      return { subject: found.name, namespaces: found.namespaces, via: 'static' };
    },
  };
}

/** One token that reads every namespace (`--query-token`, `--query-token-file`). */
export function staticTokenAuth(token: string): QueryAuthenticator {
  if (token.length < 16)
    throw new ChaperoneError('config_invalid', 'the query token must be at least 16 characters');
  return scopedTokenAuth([{ token, name: 'static-token', namespaces: '*' }]);
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$/;

function parseNamespaceList(list: string, where: string): NamespaceScope {
  if (list === '*') return '*';
  const ns = list.split(',');
  for (const n of ns)
    if (!NAMESPACE.test(n))
      throw new ChaperoneError(
        'config_invalid',
        `${where}: ${JSON.stringify(n)} is not a namespace name (lower-case DNS label), and \`*\` stands alone`,
      );
  return new Set(ns);
}

/** The union of scopes; undefined for none. */
function unionScope(scopes: readonly NamespaceScope[]): NamespaceScope | undefined {
  if (scopes.length === 0) return undefined;
  if (scopes.includes('*')) return '*';
  return new Set(scopes.flatMap((s) => [...(s as ReadonlySet<string>)]));
}

/**
 * The lines of a scopes file that hold something, split into fields, with
 * where each stands (for errors: never the line itself, which may hold a
 * token); blank lines and `#` comments skipped. Each line must have `count`
 * fields, as `shape` shows them.
 */
function* scopeLines(
  text: string,
  source: string,
  count: number,
  shape: string,
): Generator<{ fields: string[]; where: string }> {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${source} line ${i + 1}`;
    const fields = line.split(/[ \t]+/);
    if (fields.length !== count)
      throw new ChaperoneError(
        'config_invalid',
        `${where}: expected \`${shape} <namespace>[,<namespace>…]\` (or \`*\` for every namespace), got ${fields.length} fields`,
      );
    yield { fields, where };
  }
}

/**
 * Parses a group namespaces file (`--oidc-group-namespaces`): one group a
 * line, `<group> <namespaces>` (comma-separated, or `*`); `#` comments and
 * blank lines skipped. An OIDC caller reads the namespaces of all its groups.
 */
export function parseGroupNamespaces(
  text: string,
  source = 'the group namespaces file',
): ReadonlyMap<string, NamespaceScope> {
  const out = new Map<string, NamespaceScope>();
  for (const { fields, where } of scopeLines(text, source, 2, '<group>')) {
    const [group, list] = fields as [string, string];
    if (out.has(group))
      throw new ChaperoneError('config_invalid', `${where}: the group ${group} is listed twice`);
    out.set(group, parseNamespaceList(list, where));
  }
  if (out.size === 0) throw new ChaperoneError('config_invalid', `${source} lists no groups`);
  return out;
}

/**
 * Parses a tokens file (`--query-tokens-file`): one token a line,
 * `<token> <name> <namespaces>`, the namespaces comma-separated or `*` for
 * every one; blank lines and lines starting with `#` are skipped. Anything
 * else is refused with its line number (never its token).
 */
export function parseQueryTokens(text: string, source = 'the query tokens file'): ScopedToken[] {
  const out: ScopedToken[] = [];
  for (const { fields, where } of scopeLines(text, source, 3, '<token> <name>')) {
    const [token, name, list] = fields as [string, string, string];
    if (!/^[\x21-\x7e]+$/.test(token))
      throw new ChaperoneError('config_invalid', `${where}: the token must be printable ASCII`);
    if (!NAME.test(name))
      throw new ChaperoneError(
        'config_invalid',
        `${where}: the name must be letters, digits and . _ @ : - (up to 128)`,
      );
    out.push({ token, name, namespaces: parseNamespaceList(list, where) });
  }
  if (out.length === 0) throw new ChaperoneError('config_invalid', `${source} lists no tokens`);
  return out;
}

export interface OidcOptions {
  issuer: string;
  audience: string;
  /** When non-empty, the token's groups claim must contain one of these. */
  allowedGroups: readonly string[];
  groupsClaim: string;
  /**
   * The claim that names the user (as the API server's --oidc-username-claim);
   * when set, a token without it as a string is refused and the principal
   * carries it as `username`. `email` also needs `email_verified` not false.
   */
  usernameClaim?: string;
  /**
   * The namespaces each group may read; a caller reads the union over its
   * groups, and one in no listed group reads nothing (403). Absent: every
   * namespace.
   */
  groupNamespaces?: ReadonlyMap<string, NamespaceScope>;
  /** Overrides discovery (tests, or issuers without discovery). */
  jwksUrl?: string;
}

export function oidcAuth(opts: OidcOptions): QueryAuthenticator {
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const keys = async () => {
    if (jwks) return jwks;
    let uri = opts.jwksUrl;
    if (!uri) {
      const url = `${opts.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok)
        throw new ChaperoneError('unavailable', `OIDC discovery at ${url} answered HTTP ${res.status}`);
      const doc = (await res.json()) as { issuer?: string; jwks_uri?: string };
      if (doc.issuer !== opts.issuer)
        throw new ChaperoneError(
          'unavailable',
          `OIDC discovery names issuer ${doc.issuer}, expected ${opts.issuer}`,
        );
      if (!doc.jwks_uri) throw new ChaperoneError('unavailable', `OIDC discovery at ${url} has no jwks_uri`);
      uri = doc.jwks_uri;
    }
    jwks = createRemoteJWKSet(new URL(uri));
    return jwks;
  };
  return {
    async authenticate(authorization) {
      const token = bearer(authorization);
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, await keys(), {
          issuer: opts.issuer,
          audience: opts.audience,
          clockTolerance: 5,
        }));
      } catch (err) {
        if (err instanceof ChaperoneError) throw err;
        if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError))
          throw new ChaperoneError('unavailable', `cannot verify OIDC tokens: ${(err as Error).message}`);
        if (err instanceof errors.JWTExpired) throw new AuthError('unauthenticated', 'the token has expired');
        if (err instanceof errors.JWTClaimValidationFailed)
          throw new AuthError('unauthenticated', `the token's ${err.claim} claim is not acceptable`);
        throw new AuthError('unauthenticated', `the token is not valid: ${(err as Error).message}`);
      }
      const claim = payload[opts.groupsClaim];
      const groups = Array.isArray(claim) ? claim.map(String) : typeof claim === 'string' ? [claim] : [];
      const subject = String(payload.sub ?? 'unknown');
      const named = opts.usernameClaim ? { username: usernameOf(payload, opts.usernameClaim) } : {};
      if (opts.allowedGroups.length > 0 && !groups.some((g) => opts.allowedGroups.includes(g)))
        throw new AuthError('forbidden', `${subject} is not in a group allowed to read the audit log`);
      if (!opts.groupNamespaces) return { subject, namespaces: '*', groups, ...named, via: 'oidc' };
      const map = opts.groupNamespaces;
      const namespaces = unionScope(groups.flatMap((g) => map.get(g) ?? []));
      if (!namespaces)
        throw new AuthError(
          'forbidden',
          `${subject} is in no group that --oidc-group-namespaces lets read a namespace of the audit log`,
        );
      return { subject, namespaces, groups, ...named, via: 'oidc' };
    },
  };
}

function usernameOf(payload: Record<string, unknown>, claim: string): string {
  const v = payload[claim];
  if (typeof v !== 'string' || v === '')
    throw new AuthError(
      'unauthenticated',
      `the token has no ${claim} claim (--oidc-username-claim) to name its user`,
    );
  if (claim === 'email' && payload.email_verified === false)
    throw new AuthError('unauthenticated', "the token's email is not verified (email_verified is false)");
  return v;
}
