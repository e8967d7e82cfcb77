// Versioned SQL migrations (migrations/NNNN_name.sql), each applied once, in its own transaction
// together with its row in schema_migrations. An advisory lock serialises appliances that share
// an external database. An applied file that changed since is refused, never silently re-run.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { CL_ERR_APP_ROLE, CL_ERR_MIGRATION_CHANGED, CL_ERR_MIGRATION_FAILED } from '../lib/errors.js';
import { inTransaction } from '../lib/db.js';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { seedItems } from '../apps/api/index.js';
import { APP_ROLE, ensureAppRole, ownAppSchema } from '../lib/app-database.js';
import { appDatabasePassword, embeddedUrl, type ServiceUrls } from './child-env.js';
import { PG_DATABASE, type Secrets } from './first-boot.js';
import type { GraphNode } from './process-graph.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

const LOCK_KEY = 0x43_4c_4d_49; // "CLMI"

export function readMigrations(dir: string): Migration[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const migrations = files.map((file) => {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new Error(`migrations: ${file} does not match NNNN_name.sql`);
    const sql = readFileSync(join(dir, file), 'utf8');
    return { version: Number(match[1]), name: match[2]!, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations: expected version ${i + 1}, found ${m.version} (${m.name}); versions must be consecutive`);
  });
  return migrations;
}

/** Creates the database if it does not exist yet (embedded mode: initdb made only "postgres"). */
export async function ensureDatabase(adminUrl: string, database: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount) return false;
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    return true;
  } finally {
    await client.end();
  }
}

/** Applies what is pending; returns the versions applied by this call. */
export async function applyMigrations(url: string, migrations: readonly Migration[]): Promise<number[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    // Another appliance migrating the same database holds the lock for seconds, not minutes.
    await client.query("SET lock_timeout = '60s'");
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number; checksum: string }>('SELECT version, checksum FROM schema_migrations');
    const applied = new Map(rows.map((r) => [r.version, r.checksum]));
    const done: number[] = [];
    for (const m of migrations) {
      const checksum = applied.get(m.version);
      if (checksum !== undefined) {
        if (checksum !== m.checksum) throw new CL_ERR_MIGRATION_CHANGED(`${pad(m.version)}_${m.name}`);
        continue;
      }
      try {
        await inTransaction(client, async () => {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
        });
        done.push(m.version);
      } catch (err) {
        throw new CL_ERR_MIGRATION_FAILED(`${pad(m.version)}_${m.name}`, (err as Error).message, { cause: err });
      }
    }
    return done;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => {});
    await client.end();
  }
}

function pad(version: number): string {
  return String(version).padStart(4, '0');
}

/**
 * The boot graph's migrations task: our database (embedded Postgres), the migrations, the app's
 * role (it owns the schema `app`), the demo rows (written as the app, into its schema).
 */
export async function runMigrations(node: GraphNode, log: Logger, embeddedPostgres: boolean, urls: ServiceUrls, secrets: Secrets, config: Config, migrations: ReturnType<typeof readMigrations>): Promise<void> {
  if (embeddedPostgres) {
    const created = await ensureDatabase(embeddedUrl(secrets.pgPassword, config.pgPort, 'postgres'), PG_DATABASE);
    if (created) log.info({ database: PG_DATABASE }, 'database created');
  }
  // The app's role first: a database user that may not make it fails the boot before any migration.
  const client = new pg.Client({ connectionString: urls.database, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    try {
      // The app's pools (two colours' instances, the worker) and a margin; the appliance keeps 10.
      await ensureAppRole(client, appDatabasePassword(urls.database), Math.max(60, 2 * config.apiInstances * 10 + config.workerConcurrency + 2 + 15) - 10);
    } catch (err) {
      throw new CL_ERR_APP_ROLE(APP_ROLE, (err as Error).message, { cause: err });
    }
    const applied = await applyMigrations(urls.database, migrations);
    log.info({ task: node.name, applied, total: migrations.length }, applied.length ? `applied migrations ${applied.join(', ')}` : 'migrations up to date');
    // What the migrations made in the app's schema is the app's.
    await ownAppSchema(client);
  } finally {
    await client.end();
  }
  const seeded = await seedItems(urls.app.database, config.seedItems);
  if (seeded > 0) log.info({ rows: seeded }, 'seeded demo items');
}
