// The storage conformance suite against a real PostgreSQL (one fresh
// database per test, from the e2e harness): the same cases the embedded
// store passes in collector/src/store/sqlite-store.test.ts.
import { POSTGRES, PostgresStore } from '@chaperone/collector';
import { storeConformance } from '@chaperone/collector/testing';
import pg from 'pg';
import { createDatabase } from './environment.ts';

storeConformance('PostgreSQL', async () => {
  const db = await createDatabase('store');
  return {
    dialect: POSTGRES,
    open: () => PostgresStore.open({ url: db.url, poolSize: 2 }),
    reopen: () => PostgresStore.open({ url: db.url, poolSize: 2 }),
    async exec(sql, params) {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query(sql, params as unknown[]);
      } finally {
        await c.end();
      }
    },
    destroy: () => db.drop(),
  };
});
