/**
 * WebSocket frames out (RFC 6455 §5.2), one unfragmented frame per message.
 * A server's frames are unmasked and their payload is not copied (header and
 * payload go out as two buffers); a client's frames are masked with a fresh
 * random key each (§5.3: "unpredictable"), which means a copy.
 */
import { randomFillSync } from 'node:crypto';
import { type OPCODE, unmask } from './frame-decoder.ts';

export type Opcode = (typeof OPCODE)[keyof typeof OPCODE];

/**
 * The buffers of one frame, to be written in order. `lead` is a byte that
 * comes before `payload` in the frame's payload (a channel number): unmasked,
 * it goes into the header's buffer, so the payload is still not copied.
 */
export function encodeFrame(opcode: Opcode, payload: Buffer, masked: boolean, lead?: number): Buffer[] {
  const extra = lead === undefined ? 0 : 1;
  if (masked && extra === 1)
    return encodeFrame(opcode, Buffer.concat([Buffer.of(lead as number), payload]), true);
  const len = payload.length + extra;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const header = Buffer.allocUnsafe(2 + ext + (masked ? 4 : 0) + extra);
  header[0] = 0x80 | opcode;
  const maskBit = masked ? 0x80 : 0;
  if (ext === 0) header[1] = maskBit | len;
  else if (ext === 2) {
    header[1] = maskBit | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header[1] = maskBit | 127;
    header.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    header.writeUInt32BE(len >>> 0, 6);
  }
  if (!masked) {
    if (extra === 1) header[2 + ext] = lead as number;
    return payload.length === 0 ? [header] : [header, payload];
  }
  const key = header.subarray(2 + ext);
  randomFillSync(key);
  // Masking is its own inverse.
  return len === 0 ? [header] : [header, unmask(payload, key)];
}

/** A close frame's payload: the status code and a reason (trimmed to fit the 125-byte control frame limit). */
export function closePayload(code: number, reason = ''): Buffer {
  let r = Buffer.from(reason, 'utf8');
  if (r.length > 123) {
    // Cut at a character boundary.
    let end = 123;
    while (end > 0 && ((r[end] as number) & 0xc0) === 0x80) end--;
    r = r.subarray(0, end);
  }
  const out = Buffer.allocUnsafe(2 + r.length);
  out.writeUInt16BE(code, 0);
  r.copy(out, 2);
  return out;
}
