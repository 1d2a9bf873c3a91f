/** Kubernetes label selector evaluation, with the first unmet requirement explained. */
import type { LabelSelector } from '../k8s-types.ts';

/** Undefined when `labels` match; otherwise the first requirement they fail, in words. */
export function unmetRequirement(
  selector: LabelSelector | undefined,
  labels: Record<string, string>,
): string | undefined {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) {
    if (labels[k] !== v)
      return `label ${k}=${v} is required${k in labels ? ` (it is "${labels[k]}")` : ' (it is missing)'}`;
  }
  for (const e of selector?.matchExpressions ?? []) {
    const has = e.key in labels;
    const value = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(value as string)) {
          return `label ${e.key} must be ${values.map((v) => `"${v}"`).join(' or ')}${has ? ` (it is "${value}")` : ' (it is missing)'}`;
        }
        break;
      case 'NotIn':
        if (has && values.includes(value as string)) return `label ${e.key} must not be "${value}"`;
        break;
      case 'Exists':
        if (!has) return `label ${e.key} must be present`;
        break;
      case 'DoesNotExist':
        if (has) return `label ${e.key} must be absent (it is "${value}")`;
        break;
      default:
        return `unknown selector operator ${String(e.operator)}`;
    }
  }
  return undefined;
}

export function matchesSelector(
  selector: LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  return unmetRequirement(selector, labels) === undefined;
}
