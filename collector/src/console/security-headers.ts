/**
 * Headers on every console answer: a Content-Security-Policy that allows only
 * this origin's own script and style files (no inline script or style, no
 * eval, no framing, no plugins), no MIME sniffing, no referrer, and HSTS when
 * served over TLS.
 *
 * `'wasm-unsafe-eval'` lets the page compile WebAssembly, and nothing else: the
 * asciinema player's terminal emulator is WebAssembly carried inside app.js
 * (browsers refuse to compile any under a script-src without it). It does not
 * allow eval(), new Function() or inline script.
 */
import type { ServerResponse } from 'node:http';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function setSecurityHeaders(res: ServerResponse, tls: boolean): void {
  res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('cross-origin-resource-policy', 'same-origin');
  res.setHeader('permissions-policy', 'camera=(), microphone=(), geolocation=()');
  if (tls) res.setHeader('strict-transport-security', 'max-age=31536000');
}
