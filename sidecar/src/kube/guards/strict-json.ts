/**
 * JSON read one way only. The API server's decoder keeps the last of two equal
 * keys in an object, and JSON.parse does too, but a guard that reads a body
 * must not depend on every reader agreeing: a body with a repeated key (after
 * unescaping: "a" and "\u0061" are the same key) is refused. Error messages
 * give a position, never a piece of the body (it may hold secret values).
 */

export class StrictJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const MAX_DEPTH = 512;

/** Where a member of the top-level object sits in the text: its value spans [start, end). */
export interface TopMember {
  readonly key: string;
  readonly start: number;
  readonly end: number;
}

/**
 * Checks `text` for repeated object keys and syntax, by a scan of its own;
 * returns the members of the top-level object (empty for other documents).
 */
function scan(text: string): TopMember[] {
  const top: TopMember[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new StrictJsonError(`${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const string = (): string => {
    const start = i;
    i++; // opening quote
    let escaped = false;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        const raw = text.slice(start, i);
        // Decoding a string token alone is safe; it also validates its escapes.
        try {
          return escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        } catch {
          return fail('invalid string');
        }
      }
      if (c === 0x5c) {
        escaped = true;
        i += 2;
        continue;
      }
      if (c < 0x20) fail('control character in a string');
      i++;
    }
    return fail('unterminated string');
  };
  const value = (depth: number): void => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const keys = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        if (keys.has(key)) fail('repeated object key');
        keys.add(key);
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        ws();
        const start = i;
        value(depth + 1);
        if (depth === 0) top.push({ key, start, end: i });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') {
      string();
      return;
    }
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail('unexpected character');
    i += (m as RegExpExecArray)[0].length;
  };
  value(0);
  ws();
  if (i !== text.length) fail('unexpected data after the document');
  return top;
}

/**
 * The parsed document; throws StrictJsonError on invalid UTF-8, invalid JSON
 * or a repeated key in any object.
 */
export function parseStrictJson(body: Buffer): unknown {
  return readStrictJson(body).value;
}

export interface StrictJson {
  readonly text: string;
  readonly value: unknown;
  readonly top: readonly TopMember[];
}

/** As parseStrictJson, also keeping the text and where the top-level members are. */
export function readStrictJson(body: Buffer): StrictJson {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    throw new StrictJsonError('the body is not valid UTF-8');
  }
  const top = scan(text);
  try {
    return { text, value: JSON.parse(text), top };
  } catch {
    throw new StrictJsonError('the body is not valid JSON');
  }
}

/**
 * The JSON object `doc` with `metadata.resourceVersion` set to `rv` (and
 * `metadata.uid` to `uid`, when given), written into its text (every other
 * byte kept: numbers are never re-encoded). `doc` must be an object whose
 * `metadata`, if present, is an object without a resourceVersion (nor a uid,
 * when one is given).
 */
export function withResourceVersion(doc: StrictJson, rv: string, uid?: string): string {
  const members = `"resourceVersion":${JSON.stringify(rv)}${uid === undefined ? '' : `,"uid":${JSON.stringify(uid)}`}`;
  const meta = doc.top.find((m) => m.key === 'metadata');
  if (meta) {
    // metadata's value starts with '{': insert right after it.
    const at = meta.start + 1;
    const empty = /^\s*\}/.test(doc.text.slice(at, meta.end));
    return `${doc.text.slice(0, at)}${members}${empty ? '' : ','}${doc.text.slice(at)}`;
  }
  const open = doc.text.indexOf('{');
  const empty = doc.top.length === 0;
  return `${doc.text.slice(0, open + 1)}"metadata":{${members}}${empty ? '' : ','}${doc.text.slice(open + 1)}`;
}

/** A JSON patch (an array of operations) with a last operation setting metadata.resourceVersion to `rv`. */
export function jsonPatchWithResourceVersion(doc: StrictJson, rv: string): string {
  const op = `{"op":"replace","path":"/metadata/resourceVersion","value":${JSON.stringify(rv)}}`;
  const close = doc.text.lastIndexOf(']');
  const empty = Array.isArray(doc.value) && doc.value.length === 0;
  return `${doc.text.slice(0, close)}${empty ? '' : ','}${op}${doc.text.slice(close)}`;
}
