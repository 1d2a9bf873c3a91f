/**
 * `admission.k8s.io/v1` AdmissionReview: decoding with clear errors for
 * anything malformed (the server answers those with HTTP 400), and the
 * response envelope.
 */
import { check, ValidationError } from '@chaperone/shared';

export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: GroupVersionKind;
  readonly resource?: { group: string; version: string; resource: string };
  readonly subResource?: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly operation: string;
  readonly object?: unknown;
  /** The object before an UPDATE (or the one being deleted). */
  readonly oldObject?: unknown;
  readonly dryRun?: boolean;
  /** Who asked: the authenticated (or impersonated) user the API server authorized. */
  readonly userInfo?: { username?: string; uid?: string; groups?: string[] };
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  /** base64 of the JSON patch. */
  readonly patch?: string;
  readonly status?: { code: number; reason: string; message: string };
  readonly warnings?: readonly string[];
}

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

/** Parses and checks an AdmissionReview body; throws ValidationError naming the bad field. */
export function parseAdmissionReview(body: string): AdmissionRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    throw new ValidationError('', `the body is not valid JSON (${(err as Error).message})`);
  }
  const review = check.object(doc, '');
  if (review.kind !== 'AdmissionReview') {
    throw new ValidationError('/kind', `must be "AdmissionReview", got ${JSON.stringify(review.kind)}`);
  }
  if (review.apiVersion !== ADMISSION_API_VERSION) {
    throw new ValidationError(
      '/apiVersion',
      `must be "${ADMISSION_API_VERSION}" (set admissionReviewVersions: ["v1"] on the webhook), got ${JSON.stringify(review.apiVersion)}`,
    );
  }
  const req = check.object(review.request, '/request');
  check.str(req.uid, '/request/uid', { max: 128 });
  const kind = check.object(req.kind, '/request/kind');
  check.str(kind.group, '/request/kind/group', { empty: true });
  check.str(kind.version, '/request/kind/version');
  check.str(kind.kind, '/request/kind/kind');
  check.str(req.operation, '/request/operation');
  check.optStr(req.namespace, '/request/namespace');
  check.optStr(req.subResource, '/request/subResource');
  if (req.dryRun !== undefined && typeof req.dryRun !== 'boolean') {
    throw new ValidationError('/request/dryRun', 'must be a boolean');
  }
  if (req.operation === 'CREATE' && !check.isObject(req.object)) {
    throw new ValidationError('/request/object', 'must be an object for a CREATE');
  }
  return req as unknown as AdmissionRequest;
}

export function formatAdmissionReview(response: AdmissionResponse): string {
  // The common case, written directly: a patch is base64 (RFC 4648 alphabet,
  // nothing to escape), so the large string is not scanned again by JSON.stringify.
  if (response.patch !== undefined && response.status === undefined && response.warnings === undefined) {
    return `{"apiVersion":"${ADMISSION_API_VERSION}","kind":"AdmissionReview","response":{"uid":${JSON.stringify(response.uid)},"allowed":${response.allowed},"patchType":"JSONPatch","patch":"${response.patch}"}}`;
  }
  return JSON.stringify({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response });
}
