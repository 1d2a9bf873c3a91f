/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses
 * it: the user name is left empty in the SCRAM messages (the server takes
 * the one from the startup packet), and no channel binding (gs2 header
 * `n,,`: "the client doesn't support channel binding").
 *
 *   SaltedPassword  := Hi(Normalize(password), salt, i)        Hi is PBKDF2 with HMAC-SHA-256
 *   ClientKey       := HMAC(SaltedPassword, "Client Key")
 *   StoredKey       := H(ClientKey)
 *   AuthMessage     := client-first-message-bare + "," + server-first-message + "," + client-final-message-without-proof
 *   ClientSignature := HMAC(StoredKey, AuthMessage)
 *   ClientProof     := ClientKey XOR ClientSignature
 *   ServerKey       := HMAC(SaltedPassword, "Server Key")
 *   ServerSignature := HMAC(ServerKey, AuthMessage)
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
/** A server asking for more iterations than this is refused (the work is ours). */
export const MAX_SCRAM_ITERATIONS = 1_000_000;

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

const GS2_HEADER = 'n,,';

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}

/**
 * PostgreSQL applies SASLprep to the password and uses it unprepared when it
 * is not valid SASLprep input. This covers what real passwords hold: ASCII
 * as is; otherwise non-ASCII spaces mapped to a space, "mapped to nothing"
 * characters removed, then NFKC.
 */
export function saslPrep(password: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  let mapped = '';
  for (const ch of password) {
    const c = ch.codePointAt(0) as number;
    if (NON_ASCII_SPACES.has(c) || (c >= 0x2000 && c <= 0x200b)) mapped += ' ';
    else if (!MAPPED_TO_NOTHING.has(c) && !(c >= 0xfe00 && c <= 0xfe0f) && !(c >= 0x180b && c <= 0x180d))
      mapped += ch;
  }
  return mapped.normalize('NFKC');
}

/** RFC 3454 table C.1.2 (non-ASCII space characters, outside 2000–200B). */
const NON_ASCII_SPACES = new Set([0x00a0, 0x1680, 0x202f, 0x205f, 0x3000]);
/** RFC 3454 table B.1 (commonly mapped to nothing, outside the ranges tested inline). */
const MAPPED_TO_NOTHING = new Set([0x00ad, 0x034f, 0x1806, 0x200c, 0x200d, 0x2060, 0xfeff]);

function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) throw new ScramError('malformed SCRAM message from the server');
    out.set(part.slice(0, 1), part.slice(2));
  }
  return out;
}

const saltedCache = new Map<string, Buffer>();

/** Hi(password, salt, i), remembered for the last few inputs: every new connection would otherwise redo it. */
async function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  const key = createHash('sha256')
    .update(password)
    .update('\0')
    .update(salt)
    .update(String(iterations))
    .digest('hex');
  const hit = saltedCache.get(key);
  if (hit) return hit;
  const value = await new Promise<Buffer>((resolve, reject) =>
    pbkdf2(saslPrep(password), salt, iterations, 32, 'sha256', (err, k) => (err ? reject(err) : resolve(k))),
  );
  if (saltedCache.size >= 8) saltedCache.delete(saltedCache.keys().next().value as string);
  saltedCache.set(key, value);
  return value;
}

/** One SCRAM exchange: `first()`, then `final(serverFirst)`, then `verify(serverFinal)`. */
export class ScramClient {
  readonly #password: string;
  readonly #nonce: string;
  readonly #user: string;
  #clientFirstBare = '';
  #serverSignature: Buffer | undefined;

  /** `user` stays empty for PostgreSQL (RFC 7677's example names one). */
  constructor(password: string, options: { nonce?: string; user?: string } = {}) {
    this.#password = password;
    this.#nonce = options.nonce ?? randomBytes(18).toString('base64');
    this.#user = options.user ?? '';
  }

  /** client-first-message: the SASLInitialResponse data. */
  first(): Buffer {
    this.#clientFirstBare = `n=${this.#user},r=${this.#nonce}`;
    return Buffer.from(GS2_HEADER + this.#clientFirstBare);
  }

  /** client-final-message for the server-first-message: the SASLResponse data. */
  async final(serverFirstData: Buffer): Promise<Buffer> {
    const serverFirst = serverFirstData.toString('utf8');
    const a = attributes(serverFirst);
    const nonce = a.get('r');
    const salt = a.get('s');
    const iterations = Number(a.get('i'));
    if (!nonce?.startsWith(this.#nonce) || nonce.length === this.#nonce.length) {
      throw new ScramError('the server did not extend our SCRAM nonce');
    }
    if (!salt) throw new ScramError('the server sent no SCRAM salt');
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_SCRAM_ITERATIONS) {
      throw new ScramError(
        `the server asked for ${a.get('i')} SCRAM iterations (1 to ${MAX_SCRAM_ITERATIONS})`,
      );
    }
    const salted = await saltedPassword(this.#password, Buffer.from(salt, 'base64'), iterations);
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=${Buffer.from(GS2_HEADER).toString('base64')},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(storedKey, authMessage));
    this.#serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }

  /** Checks the server-final-message: the server proves it knows the password too. */
  verify(serverFinalData: Buffer): void {
    const a = attributes(serverFinalData.toString('utf8'));
    const error = a.get('e');
    if (error !== undefined) throw new ScramError(`the server ended SCRAM authentication: ${error}`);
    const v = Buffer.from(a.get('v') ?? '', 'base64');
    const expected = this.#serverSignature;
    if (!expected || v.length !== expected.length || !timingSafeEqual(v, expected)) {
      throw new ScramError("the server's SCRAM signature is wrong: it does not know the password");
    }
  }
}

/** The md5 password exchange: "md5" + md5(md5(password + user) + salt), in hex. */
export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password).update(user).digest('hex');
  return `md5${createHash('md5').update(inner).update(salt).digest('hex')}`;
}
