/**
 * The newest checkpoint per chain: `checkpoint_chains` holds, for each
 * sidecar chain, the id of the newest stored checkpoint whose payload lists
 * it, kept up to date as checkpoints are stored (and filled from the stored
 * checkpoints by the migration that creates it), so `/v1/events/{id}/chain`
 * finds its checkpoint by chain instead of reading checkpoints one by one.
 * The payload is read unverified here: whoever uses the checkpoint checks its
 * signature. The SQL is shared by both backends; the parsing is pure.
 */
import type { Dialect } from './query-sql.ts';
import type { SqlStatement } from './rollup-sql.ts';
import { CHECKPOINT_COLUMNS } from './store-rows.ts';

/** The migration that creates the table (both backends; the store fills it right after, CHECKPOINT_INDEX_VERSION). */
export function checkpointIndexTableSql(intType: 'INTEGER' | 'BIGINT'): string {
  return `
  CREATE TABLE checkpoint_chains (
    sidecar_id TEXT PRIMARY KEY,
    checkpoint_id ${intType} NOT NULL
  );
  `;
}

/** The chains a checkpoint's payload lists (none when it cannot be read: `audit verify` reports such a row). */
export function checkpointChainIds(jws: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      chains?: unknown;
    };
    if (!Array.isArray(payload.chains)) return [];
    const ids = new Set<string>();
    for (const c of payload.chains) {
      const id = (c as { sidecarId?: unknown } | null)?.sidecarId;
      if (typeof id === 'string') ids.add(id);
    }
    return [...ids];
  } catch {
    return [];
  }
}

/**
 * Records checkpoint `id` as the newest of each chain its payload lists,
 * unless a newer one is recorded: one statement (none for a payload that
 * lists no chain), the ids passed as one JSON array.
 */
export function indexCheckpoint(d: Dialect, id: number, jws: string): SqlStatement[] {
  const ids = checkpointChainIds(jws);
  if (ids.length === 0) return [];
  const from =
    d.name === 'sqlite'
      ? 'SELECT value, ? FROM json_each(?)'
      : 'SELECT value, $1::bigint FROM jsonb_array_elements_text($2::jsonb) AS value';
  return [
    {
      sql: `INSERT INTO checkpoint_chains (sidecar_id, checkpoint_id) ${from} WHERE true
        ON CONFLICT (sidecar_id) DO UPDATE SET checkpoint_id = excluded.checkpoint_id
        WHERE excluded.checkpoint_id > checkpoint_chains.checkpoint_id`,
      params: [id, JSON.stringify(ids)],
    },
  ];
}

/** The chain's newest checkpoint row. Parameters: sidecar id. */
export function newestCheckpointSql(d: Dialect): string {
  const cols = CHECKPOINT_COLUMNS.split(', ')
    .map((c) => `c.${c}`)
    .join(', ');
  return `SELECT ${cols} FROM checkpoint_chains x JOIN checkpoints c ON c.id = x.checkpoint_id WHERE x.sidecar_id = ${d.placeholder(1)}`;
}

/** Checkpoints read per page while the migration fills the table. */
export const CHECKPOINT_INDEX_PAGE = 500;
