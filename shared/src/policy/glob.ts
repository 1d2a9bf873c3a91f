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
