/** The SQL masks a policy puts in force, for the masking tests. Test-only. */
import { parsePolicy, type SqlMask, sqlMasksFor } from '@chaperone/shared';

/** The masks in force on database `app` under a policy with these rules (YAML, indented as under `rules:`). */
export function masksOf(rules: string): SqlMask[] {
  const policy = parsePolicy(`apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: masks }
spec:
  defaultAction: allow
  rules:
${rules}`);
  return sqlMasksFor(
    { protocol: 'postgres', verb: 'query', sql: { database: 'app', statements: [] } },
    policy.rules,
  );
}
