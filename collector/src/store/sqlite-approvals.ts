/**
 * The embedded store's approvals: scripts of sql-approvals.ts run
 * synchronously on the store's one connection (a write inside one
 * `BEGIN IMMEDIATE`), and changes announced in-process, the embedded store
 * being one process.
 */
import { EventEmitter } from 'node:events';
import type { DatabaseSync } from 'node:sqlite';
import type { ApprovalListener } from './approval-store.ts';
import { type Row, type Script, type ScriptRunner, SqlApprovalStore } from './sql-approvals.ts';

function runSync<T>(db: DatabaseSync, script: Script<T>): T {
  let next = script.next();
  while (!next.done) {
    const { sql, params } = next.value;
    const text = sql.replace('{lock}', '');
    const stmt = db.prepare(text);
    let rows: Row[] = [];
    if (/^\s*SELECT/i.test(text)) rows = stmt.all(...(params as never[])) as Row[];
    else stmt.run(...(params as never[]));
    next = script.next(rows);
  }
  return next.value;
}

export function sqliteApprovals(db: DatabaseSync): SqlApprovalStore {
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const runner: ScriptRunner = {
    async read(script) {
      return runSync(db, script);
    },
    async write(script) {
      db.exec('BEGIN IMMEDIATE');
      try {
        const out = runSync(db, script);
        db.exec('COMMIT');
        return out;
      } catch (err) {
        if (db.isTransaction) db.exec('ROLLBACK');
        throw err;
      }
    },
    committed(ids) {
      for (const id of ids) changes.emit('change', id);
    },
    async onChange(listener: ApprovalListener) {
      changes.on('change', listener);
      return () => {
        changes.off('change', listener);
      };
    },
  };
  return new SqlApprovalStore(runner);
}
