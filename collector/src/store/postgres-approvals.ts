/**
 * PostgreSQL approvals: scripts of sql-approvals.ts run in one transaction
 * (rows locked FOR UPDATE), and every change announced with
 * `pg_notify('chaperone_approvals', <id>)` inside that transaction, so each
 * replica LISTENing on its own connection learns of it the moment it commits
 * — a decision taken through one replica reaches the sidecar held by another
 * at once, without polling. When the listening connection breaks, it is
 * opened again and listeners are told to re-read everything they wait for
 * (a notification sent meanwhile may be lost).
 */
import type pg from 'pg';
import PgClient from 'pg';
import type { ApprovalListener } from './approval-store.ts';
import { type Row, type Script, type ScriptRunner, SqlApprovalStore, type Step } from './sql-approvals.ts';

export const APPROVAL_CHANNEL = 'chaperone_approvals';

function numbered(s: Step): { text: string; values: unknown[] } {
  let n = 0;
  return {
    text: s.sql.replace('{lock}', ' FOR UPDATE').replace(/\?/g, () => `$${++n}`),
    values: [...s.params],
  };
}

async function runAsync<T>(c: pg.ClientBase | pg.Pool, script: Script<T>): Promise<T> {
  let next = script.next();
  while (!next.done) {
    const q = numbered(next.value);
    const r = await c.query(q.text, q.values);
    next = script.next(r.rows as Row[]);
  }
  return next.value;
}

export interface PostgresApprovals {
  readonly store: SqlApprovalStore;
  close(): Promise<void>;
}

export function postgresApprovals(pool: pg.Pool, url: string): PostgresApprovals {
  const listeners = new Set<ApprovalListener>();
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  const emit = (id: string | undefined) => {
    for (const l of listeners) l(id);
  };

  const listen = (): Promise<void> => {
    connecting ??= (async () => {
      const c = new PgClient.Client({
        connectionString: url,
        application_name: 'chaperone-collector-approvals',
      });
      c.on('notification', (m) => {
        if (m.channel === APPROVAL_CHANNEL && m.payload) emit(m.payload);
      });
      c.on('error', () => {
        if (client !== c) return;
        client = undefined;
        void c.end().catch(() => {});
        reconnect();
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${APPROVAL_CHANNEL}`);
      } catch (err) {
        await c.end().catch(() => {});
        throw err;
      }
      if (closed) {
        await c.end().catch(() => {});
        return;
      }
      client = c;
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  const reconnect = () => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      listen().then(
        () => emit(undefined),
        () => reconnect(),
      );
    }, 1000);
    retry.unref();
  };

  const runner: ScriptRunner = {
    read: (script) => runAsync(pool, script),
    async write<T>(script: Script<T>): Promise<T> {
      const c = await pool.connect();
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        const out = await runAsync(c, script);
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch((e: Error) => {
          broken = e;
        });
        throw err;
      } finally {
        c.release(broken);
      }
    },
    announceStep: (id) => ({ sql: 'SELECT pg_notify(?, ?)', params: [APPROVAL_CHANNEL, id] }),
    // Announced by pg_notify at commit, to this replica's listener as to every other.
    committed() {},
    async onChange(listener) {
      if (!client && !closed) await listen();
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
  return {
    store: new SqlApprovalStore(runner),
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await connecting?.catch(() => {});
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}
