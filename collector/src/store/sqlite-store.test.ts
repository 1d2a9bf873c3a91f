import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { approvalStoreConformance } from './approval-store-conformance.ts';
import { SQLITE } from './query-sql.ts';
import { SQLITE_FILE, SqliteStore } from './sqlite-store.ts';
import { storeConformance } from './store-conformance.ts';

storeConformance('embedded (node:sqlite)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-store-'));
  return {
    dialect: SQLITE,
    open: async () => new SqliteStore({ dataDir: dir }),
    reopen: async () => new SqliteStore({ dataDir: dir }),
    async exec(sql, params) {
      const db = new DatabaseSync(join(dir, SQLITE_FILE));
      try {
        db.prepare(sql).run(...(params as never[]));
      } finally {
        db.close();
      }
    },
    destroy: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

approvalStoreConformance('embedded (node:sqlite)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-approvals-'));
  return {
    open: async () => new SqliteStore({ dataDir: dir }),
    peer: async (s) => s,
    destroy: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
