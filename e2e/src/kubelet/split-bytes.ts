/**
 * For decoder tests: bytes cut into consecutive pieces at the given offsets
 * (each taken modulo length + 1, duplicates dropped), so any list of numbers
 * from fast-check is a valid split. Empty pieces are kept.
 */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    pieces.push(bytes.subarray(at, p));
    at = p;
  }
  return pieces;
}
