/** Shell-style globs: `*` any run of characters, `?` one character; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export type Matcher = (value: string | undefined) => boolean;

/**
 * A matcher over a list of globs: true when any glob matches. An undefined
 * value matches only `*` (a cluster-scoped request has no namespace).
 */
export function globMatcher(globs: readonly string[]): Matcher {
  if (globs.includes('*')) return () => true;
  const exact = new Set(globs.filter((g) => !/[*?]/.test(g)));
  const patterns = globs.filter((g) => /[*?]/.test(g)).map(globToRegExp);
  return (value) => value !== undefined && (exact.has(value) || patterns.some((p) => p.test(value)));
}

/**
 * A matcher over URL path globs that also matches what lies below each glob
 * without `*`: `/logs` (or `/logs/`) matches `/logs`, `/logs/` and `/logs/x`, as
 * the API server serves all three from one handler. `/` matches only itself:
 * it is the root listing, not a prefix of every path. Globs with `*` already
 * say how far they reach and are read as they are.
 */
export function pathTreeMatcher(globs: readonly string[]): Matcher {
  const own = globMatcher(globs);
  const trees = globs
    .filter((g) => !g.includes('*') && g !== '/' && g !== '')
    .map((g) => globToRegExp(g.endsWith('/') ? g.slice(0, -1) : g))
    .map((re) => new RegExp(`${re.source.slice(0, -1)}(?:/.*)?$`, re.flags));
  return (value) => own(value) || (value !== undefined && trees.some((re) => re.test(value)));
}
