/**
 * Answers an exec or attach WebSocket upgrade with a Status instead of a
 * session: 101 with the subprotocol the agent offered, the Status on the
 * error channel, a close. kubectl prints the Status's message and exits
 * non-zero; any non-101 answer would instead make it retry over SPDY
 * (REFERENCE: kubectl's fallback), hiding why it was refused.
 *
 * Every answer the pipeline gives such a request comes here
 * (AgentResponse#answerThrough): a policy denial, a refusal of what cannot be
 * read, a full spool, a pod lookup that failed.
 */
import type { Socket } from 'node:net';
import { ERROR, encodeChannelMessage } from './channel-protocol.ts';
import { OPCODE } from './frame-decoder.ts';
import { closePayload, encodeFrame } from './frame-encoder.ts';
import { switchingProtocolsHead, type WebSocketOffer } from './handshake.ts';
import { statusText } from './translate.ts';

/** How long the agent has to close its side once the answer is out. */
const LINGER_MS = 5000;

export function answerOverWebSocket(
  offer: WebSocketOffer,
): (code: number, body: Buffer, socket: Socket) => void {
  return (_code, body, socket) => {
    const status = offer.protocol.version >= 4 ? body : statusText(body);
    const frames: Buffer[] = [Buffer.from(switchingProtocolsHead(offer), 'latin1')];
    if (status !== undefined && status.length > 0) {
      const m = encodeChannelMessage(offer.protocol, ERROR, status);
      frames.push(...encodeFrame(m.type === 'text' ? OPCODE.text : OPCODE.binary, m.data, false));
    }
    frames.push(...encodeFrame(OPCODE.close, closePayload(1000), false));
    socket.on('error', () => {});
    socket.end(Buffer.concat(frames));
    // Read on (and drop) what the agent still sends, so its close is seen; then it is gone either way.
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}
