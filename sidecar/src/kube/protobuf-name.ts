/**
 * Reads `metadata.name` (and `generateName`) out of a Kubernetes protobuf
 * request body, without a schema. kubectl sends protobuf for built-in kinds
 * such as ConfigMaps, and the self-protection rules need the name of what is
 * being created.
 *
 * Layout (k8s.io/apimachinery/pkg/runtime/serializer/protobuf):
 *   magic "k8s\0", then a runtime.Unknown message:
 *     1: typeMeta (message)   2: raw (bytes: the object)   3: contentEncoding   4: contentType
 *   Every built-in object message has ObjectMeta as field 1, and ObjectMeta has
 *     1: name (string)   2: generateName (string)
 * Wire format: each field is a varint key (field number << 3 | wire type);
 * wire type 2 is a varint length then the bytes; 0 a varint; 1 eight bytes;
 * 5 four bytes.
 */
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

export class ProtobufError extends Error {
  constructor(message: string) {
    super(`malformed protobuf body: ${message}`);
    this.name = 'ProtobufError';
  }
}

function varint(buf: Buffer, pos: number): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    const b = buf[i] as number;
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [result, i + 1];
  }
  throw new ProtobufError('truncated varint');
}

/**
 * The length-delimited field `field` of a message, or undefined. Go's
 * generated decoders read every occurrence: a repeated string or bytes field
 * keeps the last, a repeated message field merges them (a later name wins,
 * an earlier one stays when the later has none). Rather than imitate that,
 * a field that occurs more than once, or with another wire type than a
 * length-delimited one, is refused: the sidecar reads only bodies that have
 * one reading.
 */
function lengthDelimited(buf: Buffer, field: number): Buffer | undefined {
  let pos = 0;
  let found: Buffer | undefined;
  while (pos < buf.length) {
    const [key, afterKey] = varint(buf, pos);
    const wire = key % 8;
    const num = Math.floor(key / 8);
    pos = afterKey;
    if (num === field && wire !== 2) {
      throw new ProtobufError(`field ${field} has wire type ${wire}, not a length-delimited one`);
    }
    switch (wire) {
      case 0:
        pos = varint(buf, pos)[1];
        break;
      case 1:
        pos += 8;
        break;
      case 5:
        pos += 4;
        break;
      case 2: {
        const [len, start] = varint(buf, pos);
        const end = start + len;
        if (end > buf.length) throw new ProtobufError('field runs past the end');
        if (num === field) {
          if (found !== undefined) {
            throw new ProtobufError(
              `field ${field} occurs more than once (the API server would merge or take the last); send it once`,
            );
          }
          found = buf.subarray(start, end);
        }
        pos = end;
        break;
      }
      default:
        throw new ProtobufError(`unsupported wire type ${wire}`);
    }
    if (pos > buf.length) throw new ProtobufError('field runs past the end');
  }
  return found;
}

export function isKubernetesProtobuf(body: Buffer): boolean {
  return body.length >= 4 && body.subarray(0, 4).equals(MAGIC);
}

/** `{name, generateName}` of the object in a Kubernetes protobuf body. */
export function protobufObjectName(body: Buffer): { name?: string; generateName?: string } {
  if (!isKubernetesProtobuf(body)) throw new ProtobufError('missing the k8s\\0 prefix');
  const raw = lengthDelimited(body.subarray(4), 2);
  if (!raw) throw new ProtobufError('no object in the envelope');
  const meta = lengthDelimited(raw, 1);
  if (!meta) return {};
  const name = lengthDelimited(meta, 1)?.toString('utf8');
  const generateName = lengthDelimited(meta, 2)?.toString('utf8');
  return { ...(name !== undefined ? { name } : {}), ...(generateName !== undefined ? { generateName } : {}) };
}
