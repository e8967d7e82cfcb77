// The store port's one contract, held by both stores: Postgres (a scratch server started by the
// project's own initdb and migrations) and the in-memory one the reconciler's test runs on.
import { afterAll, beforeAll, describe } from 'vitest';
import { createPgPool, type Pool } from '../lib/db.js';
import { MemoryRolloutStore } from '../test/helpers/memory-rollout-store.js';
import { rolloutStoreContract } from '../test/helpers/rollout-store-contract.js';
import { startScratchPostgres, type ScratchPostgres } from '../bench/scratch-postgres.js';
import { PgRolloutStore } from './store.js';

rolloutStoreContract('in memory', async () => new MemoryRolloutStore());

describe('PgRolloutStore', () => {
  let pg: ScratchPostgres;
  let pool: Pool;
  beforeAll(async () => {
    pg = await startScratchPostgres();
    pool = createPgPool(pg.url, { max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await pg?.stop();
  });

  rolloutStoreContract('in Postgres', async () => {
    // The audit log is append-only (a trigger): a scratch database's reset runs as a replica, where
    // ordinary triggers do not fire.
    await pool.query('SET session_replication_role = replica; TRUNCATE releases, pointers, deployments, verdicts, deployment_buckets, audit_events CASCADE; RESET session_replication_role');
    return new PgRolloutStore(pool);
  });
});
