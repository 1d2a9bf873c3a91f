/**
 * Kubernetes resource quantities, parsed and written in the API server's
 * canonical form (`0.5` → `500m`, `1024Mi` → `1Gi`, `1.5Gi` → `1536Mi`), so
 * the sidecar the injector writes is byte-for-byte what the API server
 * stores and re-injecting a stored pod changes nothing.
 * (k8s.io/apimachinery/pkg/api/resource: CanonicalizeBytes.)
 */
const QUANTITY = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const DECIMAL_EXP: Record<string, number> = { m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_EXP: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_SUFFIX: Record<number, string> = {
  [-3]: 'm',
  0: '',
  3: 'k',
  6: 'M',
  9: 'G',
  12: 'T',
  15: 'P',
  18: 'E',
};
const BINARY_SUFFIX: Record<number, string> = {
  0: '',
  10: 'Ki',
  20: 'Mi',
  30: 'Gi',
  40: 'Ti',
  50: 'Pi',
  60: 'Ei',
};

export function isQuantity(raw: string): boolean {
  return QUANTITY.test(raw);
}

/** The canonical form of a non-negative quantity; throws on anything else. */
export function canonicalQuantity(raw: string): string {
  const m = QUANTITY.exec(raw);
  if (!m) throw new Error(`"${raw}" is not a Kubernetes quantity (examples: 100m, 0.5, 64Mi, 1Gi)`);
  const [int = '', frac = ''] = (m[1] ?? '0').split('.');
  const suffix = m[2] ?? '';
  // value = num / 10^scale
  let num = BigInt(`${int || '0'}${frac}`);
  let scale = frac.length;
  const binary = suffix in BINARY_EXP;
  if (binary) {
    num *= 1n << BigInt(BINARY_EXP[suffix] ?? 0);
  } else {
    scale -= DECIMAL_EXP[suffix] ?? 0;
  }
  if (num === 0n) return '0';
  const pow10 = (n: number) => 10n ** BigInt(n);
  // Binary format is kept when the value is a whole number of at least 1024.
  if (binary) {
    const den = scale > 0 ? pow10(scale) : 1n;
    const whole = scale > 0 ? num / den : num * pow10(-scale);
    if ((scale <= 0 || num % den === 0n) && whole >= 1024n) {
      let exp = 0;
      let v = whole;
      while (exp < 60 && v % 1024n === 0n) {
        v /= 1024n;
        exp += 10;
      }
      return `${v}${BINARY_SUFFIX[exp]}`;
    }
  }
  // Decimal SI: in milli-units, rounded up (the API server never rounds a request down).
  let milli: bigint;
  if (scale <= 3) milli = num * pow10(3 - scale);
  else {
    const den = pow10(scale - 3);
    milli = num / den + (num % den === 0n ? 0n : 1n);
  }
  let exp = -3;
  while (exp < 18 && milli % 1000n === 0n) {
    milli /= 1000n;
    exp += 3;
  }
  return `${milli}${DECIMAL_SUFFIX[exp]}`;
}
