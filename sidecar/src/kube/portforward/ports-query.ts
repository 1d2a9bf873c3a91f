/**
 * Ports as Kubernetes reads them: strconv.ParseUint(text, 10, 16) — decimal
 * digits only, leading zeros allowed — and then, by the kubelet, above 0.
 * Anything else is refused rather than guessed at. Pure.
 */

const DIGITS = /^[0-9]+$/;

/** One port (a SPDY stream's `port` header, one part of `ports=`), or undefined when it is not one. */
export function readPort(text: string | undefined): number | undefined {
  if (text === undefined || !DIGITS.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * A request's `ports=`, as the API server reads them (PodPortForwardOptions
 * through Convert_Slice_string_To_Slice_int32: every value, each split at
 * commas, each part a port).
 */
export function readPortsQuery(query: URLSearchParams): readonly number[] | { problem: string } {
  const ports: number[] = [];
  for (const value of query.getAll('ports')) {
    for (const part of value.split(',')) {
      const n = readPort(part);
      if (n === undefined)
        return { problem: `ports=${JSON.stringify(value)}: ${JSON.stringify(part)} is not a port (1-65535)` };
      ports.push(n);
    }
  }
  if (ports.length === 0)
    return { problem: 'a port-forward over WebSocket names its ports: add ports=<port> to the URL' };
  return ports;
}
