/**
 * Text with every value the built-in credential detectors find (the stream
 * masker's: private keys, JWTs, AWS keys, GitHub and Slack tokens) replaced
 * by `[masked:<kind>]`: what an approver may read of an argv, a query, a
 * body or a SQL parameter.
 */
import { StreamMasker } from '../exec-text/index.ts';

export function maskDetected(text: string): { text: string; masked: number } {
  const m = new StreamMasker();
  const out = Buffer.concat([m.push(Buffer.from(text, 'utf8')), m.end()]).toString('utf8');
  let masked = 0;
  for (const n of Object.values(m.masked)) masked += n;
  return { text: out, masked };
}
