// One way to reach Postgres for every process: a small pool with timeouts that fail fast.
import pg from 'pg';

export type Pool = pg.Pool;

export function createPgPool(url: string, options: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: 2_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'changelens',
  });
  // An idle client losing its connection (Postgres restarted) must not crash the process;
  // the pool drops it and the next query opens a new one.
  pool.on('error', () => {});
  return pool;
}
