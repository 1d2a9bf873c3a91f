/**
 * `cidr:port` egress endpoints (`10.0.0.10/32:5432`, `10.0.0.10:5432`,
 * `[fd00::1]/128:443`) and `key=value,...` label selectors, as used in the
 * injector's settings and the namespace annotation chaperone.dev/egress.
 */
import { isIP } from 'node:net';
import { ValidationError } from '@chaperone/shared';

export interface EgressEndpoint {
  readonly cidr: string;
  readonly port: number;
}

export function parseEndpoint(raw: string): EgressEndpoint {
  const s = raw.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\](?:\/(\d+))?:(\d+)$/.exec(s);
  if (v6) {
    host = v6[2] ? `${v6[1]}/${v6[2]}` : (v6[1] as string);
    portText = v6[3] as string;
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) throw new ValidationError(raw, 'must be cidr:port, e.g. 10.0.0.10/32:5432');
    host = s.slice(0, i);
    portText = s.slice(i + 1);
  }
  const [ip = '', prefixText] = host.split('/');
  const family = isIP(ip);
  if (family === 0) throw new ValidationError(raw, `"${ip}" is not an IP address`);
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > max ||
    (prefixText !== undefined && !/^\d+$/.test(prefixText))
  ) {
    throw new ValidationError(raw, `prefix length must be 0-${max}`);
  }
  if (!/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new ValidationError(raw, `"${portText}" is not a port (1-65535)`);
  }
  return { cidr: `${ip}/${prefix}`, port: Number(portText) };
}

export function parseEndpoints(list: readonly string[]): EgressEndpoint[] {
  return list.map(parseEndpoint);
}

/** `k=v,k2=v2` → matchLabels. */
export function parseLabelSelector(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ValidationError(raw, `"${part}" is not key=value`);
    out[part.slice(0, eq).trim()] = part
      .slice(eq + 1)
      .trim()
      .replace(/^=/, '');
  }
  if (Object.keys(out).length === 0) throw new ValidationError(raw, 'is empty');
  return out;
}
