/**
 * Port-forward rules: `match.portForward.ports` lists ports (`8080`) and
 * inclusive ranges (`"8000-8999"`); this file reads that list and decides
 * whether a port-forward action's ports meet it. Pure.
 *
 * When the ports are known (a WebSocket request's `ports=`, or one forwarded
 * connection's port): a restrictive rule (deny, review, mask) matches when
 * any of them is in its list, an allow rule only when every one is.
 *
 * When they are not known yet (a SPDY port-forward session opening, where
 * each forwarded connection names its port later and is decided then): an
 * allow rule's `ports` hold — the session may open, and every port it
 * forwards is decided on its own — and a restrictive rule's do not — there is
 * no port yet to refuse.
 */
import type { Action } from './types.ts';

/** Inclusive. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

const ONE_PORT = /^[0-9]{1,5}$/;
const RANGE = /^([0-9]{1,5})-([0-9]{1,5})$/;

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * Reads one entry of `ports`: a port number (or its digits as a string) or
 * "from-to". Returns the range, or why the entry is not one.
 */
export function parsePortEntry(v: unknown): PortRange | string {
  if (typeof v === 'number') return isPort(v) ? { from: v, to: v } : `${v} is not a port (1-65535)`;
  if (typeof v !== 'string') return `must be a port number or a "from-to" range, got ${JSON.stringify(v)}`;
  const t = v.trim();
  if (ONE_PORT.test(t)) {
    const n = Number(t);
    return isPort(n) ? { from: n, to: n } : `"${v}" is not a port (1-65535)`;
  }
  const m = RANGE.exec(t);
  if (!m) return `"${v}" is neither a port nor a "from-to" range such as "8000-8999"`;
  const from = Number(m[1]);
  const to = Number(m[2]);
  if (!isPort(from) || !isPort(to)) return `"${v}": both ends must be ports (1-65535)`;
  if (from > to) return `"${v}": the range ends before it starts`;
  return { from, to };
}

/** Whether `port` lies in one of the ranges. */
export function portIn(ranges: readonly PortRange[], port: number): boolean {
  for (const r of ranges) if (port >= r.from && port <= r.to) return true;
  return false;
}

/**
 * The test of a rule's `portForward` condition: the action is a port-forward
 * and, when the rule lists ports, its ports meet them as the file's comment
 * says. `entries` were checked by the parser.
 */
export function portForwardTest(
  entries: readonly (number | string)[] | undefined,
  restrictive: boolean,
): (a: Action) => boolean {
  const ranges = entries?.map((e) => {
    const r = parsePortEntry(e);
    if (typeof r === 'string') throw new Error(`portForward.ports: ${r}`);
    return r;
  });
  return (a) => {
    const x = a.exec;
    if (x?.kind !== 'portforward') return false;
    if (!ranges) return true;
    const ports = x.ports;
    if (ports === undefined || ports.length === 0) return !restrictive;
    return restrictive ? ports.some((p) => portIn(ranges, p)) : ports.every((p) => portIn(ranges, p));
  };
}
