/** The Action the policy decides on for SQL: protocol `postgres`, verb `query`, the statements as classified. */
import type { Action, SqlStatement } from '@chaperone/shared';

export function sqlAction(
  database: string,
  statements: readonly SqlStatement[],
  user?: string,
): Action & { readonly sql: NonNullable<Action['sql']> } {
  return {
    protocol: 'postgres',
    verb: 'query',
    ...(user ? { user } : {}),
    sql: { database, statements },
  };
}
