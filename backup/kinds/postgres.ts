// Postgres backups: pg_dump in the custom format (its backend moved to the background so requests
// keep the CPU), verified by pg_restore --list and a restore into a scratch database, restored
// with pg_restore --clean in one transaction that leaves the appliance's own tables alone.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { APP_ROLE, ownAppSchema } from '../../lib/app-database.js';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import type { Logger } from '../../lib/logger.js';
import { describeFile, type BackupEntry, type Check, type Manifest } from '../manifest.js';
import { libpqTarget, pgTool, runTool, toBackground } from '../tools.js';
import type { BackupDriver } from './driver.js';

/**
 * The appliance's own tables: a restore brings back the app's data, never the release history,
 * the deployments or the audit log (a restore is itself an audited event), nor the record of
 * applied migrations. Their indexes and constraints are named after them (checked by a test).
 */
export const APPLIANCE_TABLES = ['schema_migrations', 'releases', 'pointers', 'deployments', 'verdicts', 'deployment_buckets', 'audit_events', 'fleet_instances', 'fleet_leases'] as const;

const PG_FILE = 'postgres.dump';
const TOOL_TIMEOUT_MS = 60 * 60_000;
/**
 * zlib level of pg_dump: 1 costs a fraction of the default 6's CPU (which the live services need on
 * a small box) for a dump a little larger (bench:backup).
 */
const PG_DUMP_COMPRESSION = 1;
const DUMP_APP_NAME = 'changelens-pg_dump';

export interface PostgresDriverOptions {
  databaseUrl: string;
  /** Where pg_dump and pg_restore are (undefined: PATH). */
  pgBinDir: string | undefined;
  log: Logger;
}

export class PostgresDriver implements BackupDriver {
  readonly kind = 'postgres' as const;

  constructor(private readonly o: PostgresDriverOptions) {}

  async estimateBytes(): Promise<number> {
    // The custom format compresses; the database's size is a safe upper bound.
    return Number((await this.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size'))[0]!.size);
  }

  async take(dir: string, manifest: Manifest): Promise<void> {
    const file = join(dir, PG_FILE);
    const target = libpqTarget(this.o.databaseUrl);
    const pgDump = pgTool('pg_dump', this.o.pgBinDir);
    const [server, migrations, version] = await Promise.all([
      this.query<{ v: string; db: string }>('SELECT current_setting(\'server_version\') AS v, current_database() AS db'),
      this.appliedMigrations(),
      runTool(pgDump, ['--version']),
    ]);
    const dumping = runTool(pgDump, ['--format=custom', `--compress=${PG_DUMP_COMPRESSION}`, '--no-password', `--file=${file}`, `--dbname=${target.dbname}`], { env: { ...target.env, PGAPPNAME: DUMP_APP_NAME }, timeoutMs: TOOL_TIMEOUT_MS, background: true });
    void this.lowerBackendPriority(dumping);
    await dumping;
    const tables = await this.dumpTables(file);
    manifest.servers.postgres = server[0]!.v;
    manifest.servers.pgDump = version.trim();
    manifest.database = { name: server[0]!.db, tables, migrations };
    manifest.files.push(await describeFile(file, 'postgres'));
  }

  async inspect(entry: BackupEntry, file: string): Promise<Check[]> {
    try {
      const tables = await this.dumpTables(file);
      const missing = (entry.database?.tables ?? []).filter((t) => !tables.includes(t));
      return [{ name: 'pg_restore --list', ok: missing.length === 0, detail: missing.length === 0 ? `${tables.length} tables` : `tables missing from the dump: ${missing.join(', ')}` }];
    } catch (err) {
      return [{ name: 'pg_restore --list', ok: false, detail: (err as Error).message }];
    }
  }

  async verify(entry: BackupEntry, file: string): Promise<Check> {
    const scratch = `changelens_verify_${randomBytes(4).toString('hex')}`;
    const target = libpqTarget(this.o.databaseUrl, scratch);
    // The dump holds the app's own SQL (its functions, checks, index expressions), which runs as
    // whoever restores it: the app's role, never the superuser. The scratch database is the role's.
    const asApp = await this.appRoleExists();
    await this.query(`CREATE DATABASE ${scratch}${asApp ? ` OWNER ${pg.escapeIdentifier(APP_ROLE)}` : ''}`);
    try {
      await runTool(pgTool('pg_restore', this.o.pgBinDir), ['--no-owner', '--no-acl', '--exit-on-error', '--no-password', ...(asApp ? [`--role=${APP_ROLE}`] : []), `--dbname=${target.dbname}`, file], { env: target.env, timeoutMs: TOOL_TIMEOUT_MS });
      const counts = await this.countRows(entry.database?.tables ?? [], scratch, asApp);
      const migrations = await this.appliedMigrations(scratch);
      const ok = migrations.join(',') === (entry.database?.migrations ?? []).join(',');
      const rows = Object.values(counts).reduce((a, b) => a + b, 0);
      return { name: 'restore into a scratch database', ok, detail: ok ? `${Object.keys(counts).length} tables, ${rows} rows` : `schema_migrations reads [${migrations.join(', ')}], the manifest says [${entry.database?.migrations.join(', ')}]` };
    } catch (err) {
      return { name: 'restore into a scratch database', ok: false, detail: (err as Error).message };
    } finally {
      await this.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`).catch((err: Error) => this.o.log.warn({ database: scratch, err: err.message }, 'could not drop the scratch database'));
    }
  }

  /** Only into the schema it was taken from: the migrations applied now must be the backup's. */
  async refuseRestore(entry: BackupEntry): Promise<Check[]> {
    if (!entry.database) return [];
    const current = await this.appliedMigrations();
    if (current.join(',') === entry.database.migrations.join(',')) return [];
    return [{ name: 'schema', ok: false, detail: `taken at migrations [${entry.database.migrations.join(', ')}], the database is at [${current.join(', ')}]` }];
  }

  /**
   * pg_restore --clean in one transaction: either every app table is back as it was in the
   * backup, or (on any error) nothing changed. The appliance's own tables are left out.
   */
  async restore(entry: BackupEntry, file: string): Promise<{ tables: Record<string, number> }> {
    const pgRestore = pgTool('pg_restore', this.o.pgBinDir);
    const asApp = await this.appRoleExists();
    const list = await runTool(pgRestore, ['--list', file]);
    const tmp = mkdtempSync(join(tmpdir(), 'changelens-restore-'));
    try {
      const listFile = join(tmp, 'restore.list');
      writeFileAtomic(listFile, appDataOnly(list), 0o600);
      const target = libpqTarget(this.o.databaseUrl);
      // As the app's role: the app's SQL in the dump never runs as the superuser, and what is
      // re-created is the role's from the start.
      await runTool(pgRestore, ['--clean', '--if-exists', '--single-transaction', '--exit-on-error', '--no-owner', '--no-acl', '--no-password', ...(asApp ? [`--role=${APP_ROLE}`] : []), `--use-list=${listFile}`, `--dbname=${target.dbname}`, file], {
        // A table some session holds a lock on makes the restore fail (and roll back) instead of hanging.
        env: { ...target.env, PGOPTIONS: '-c lock_timeout=30s' }, timeoutMs: TOOL_TIMEOUT_MS,
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    // pg_restore --no-owner made the restored tables the restorer's: they are the app role's again.
    const client = new pg.Client({ connectionString: this.o.databaseUrl, connectionTimeoutMillis: 5_000, application_name: 'changelens-backup' });
    client.on('error', () => {});
    await client.connect();
    try {
      await ownAppSchema(client);
    } finally {
      await client.end().catch(() => {});
    }
    const own = new Set<string>(APPLIANCE_TABLES.map((t) => `public.${t}`));
    return { tables: await this.countRows((entry.database?.tables ?? []).filter((t) => !own.has(t)), undefined, asApp) };
  }

  /**
   * The server process reading the tables for pg_dump works as hard as pg_dump itself: on our own
   * Postgres (same machine) it goes to the background too, so requests keep the CPU first.
   */
  private async lowerBackendPriority(dumping: Promise<unknown>): Promise<void> {
    let done = false;
    void dumping.then(() => { done = true; }, () => { done = true; });
    // One connection for the whole wait: a new one per poll would cost a SCRAM handshake each.
    const client = new pg.Client({ connectionString: this.o.databaseUrl, connectionTimeoutMillis: 5_000, application_name: 'changelens-backup' });
    client.on('error', () => {});
    try {
      await client.connect();
      for (let i = 0; i < 50 && !done; i++) {
        const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [DUMP_APP_NAME]);
        if (rows.length > 0) {
          for (const { pid } of rows) toBackground(pid);
          return;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch {
      // A managed Postgres, or not permitted: the dump runs at the server's priority.
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** The tables in a custom-format dump's table of contents, as schema.name. */
  private async dumpTables(file: string): Promise<string[]> {
    const list = await runTool(pgTool('pg_restore', this.o.pgBinDir), ['--list', file], { timeoutMs: TOOL_TIMEOUT_MS });
    return [...list.matchAll(/^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+) /gm)].map((m) => `${m[1]}.${m[2]}`).sort();
  }

  private async query<R extends pg.QueryResultRow>(sql: string, database?: string, asApp = false): Promise<R[]> {
    const url = new URL(this.o.databaseUrl);
    if (database) url.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5_000, application_name: 'changelens-backup' });
    client.on('error', () => {});
    await client.connect();
    try {
      // Reading the app's tables (they may be views over its functions): as the app.
      if (asApp) await client.query(`SET ROLE ${pg.escapeIdentifier(APP_ROLE)}`);
      return (await client.query<R>(sql)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  }

  private async appliedMigrations(database?: string): Promise<number[]> {
    const rows = await this.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version', database);
    return rows.map((r) => Number(r.version));
  }

  private async appRoleExists(): Promise<boolean> {
    return (await this.query('SELECT 1 FROM pg_roles WHERE rolname = $1'.replace('$1', pg.escapeLiteral(APP_ROLE)))).length > 0;
  }

  private async countRows(tables: readonly string[], database?: string, asApp = false): Promise<Record<string, number>> {
    if (tables.length === 0) return {};
    const sql = tables.map((t) => `SELECT '${t}' AS t, count(*)::bigint AS n FROM ${t.split('.').map((p) => `"${p}"`).join('.')}`).join(' UNION ALL ');
    const rows = await this.query<{ t: string; n: string }>(sql, database, asApp);
    return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
  }
}

/**
 * A pg_restore list without the appliance's own tables: every entry whose object is one of them
 * or is named after one (their data, indexes, constraints, sequences) is commented out.
 */
export function appDataOnly(list: string): string {
  const own = (name: string): boolean => APPLIANCE_TABLES.some((t) => name === t || name.startsWith(`${t}_`));
  return list.split('\n').map((line) => {
    const m = /^\d+; \d+ \d+ (.*)$/.exec(line);
    if (!m) return line;
    // The app's schema itself stays (dropping it would take what the backup does not hold with it).
    if (/^SCHEMA - /.test(m[1]!)) return `;${line}`;
    // "TABLE public items owner", "CONSTRAINT public releases releases_pkey owner": the type in
    // upper case, then the schema, the names, the owner. Only public holds the appliance's: an app
    // table named releases_notes in the schema app is the app's.
    const words = m[1]!.split(' ').slice(0, -1).filter((w) => w !== '-' && !/^[A-Z]+$/.test(w));
    const [schema, ...names] = words;
    return schema === 'public' && names.some(own) ? `;${line}` : line;
  }).join('\n');
}
