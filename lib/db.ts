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
  // the pool drops it and the next query opens a new one. A checked-out client (pool.connect())
  // loses the pool's listener while out: its own keeps a dropped connection from crashing us too
  // (the query in flight fails, the release discards the client).
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** Runs fn between BEGIN and COMMIT on one client; any error rolls back and is rethrown. */
export async function inTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>, begin = 'BEGIN'): Promise<T> {
  await client.query(begin);
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
