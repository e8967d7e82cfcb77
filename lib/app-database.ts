// The app's own place in Postgres: a login role that owns the schema `app` and everything in it, and
// nothing else. The appliance's tables (releases, pointers, deployments, verdicts, audit) stay in
// `public`, where the role has no privilege: release code (untrusted) connects as it.
import pg from 'pg';

export const APP_ROLE = 'changelens_app';
export const APP_SCHEMA = 'app';

const ROLE = pg.escapeIdentifier(APP_ROLE);
const SCHEMA = pg.escapeIdentifier(APP_SCHEMA);
/** Serialises appliances that share a database while they set the role up (not the migrations' key). */
const ROLE_LOCK_KEY = 0x43_4c_41_52; // "CLAR"

/**
 * Creates the role if missing and (re)sets what it may do: log in with `password`, nothing more than
 * its schema (its search_path), which it owns with all it holds. `public` is closed to PUBLIC, so
 * the role cannot even see the appliance's tables. Idempotent; run on every boot, after migrations.
 */
export async function ensureAppRole(client: pg.Client, password: string, connectionLimit: number): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [ROLE_LOCK_KEY]);
    const { rows: [db] } = await client.query<{ name: string; superuser: boolean }>("SELECT current_database() AS name, current_setting('is_superuser') = 'on' AS superuser");
    const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [APP_ROLE]);
    if (!rowCount) await client.query(`CREATE ROLE ${ROLE} LOGIN`);
    // A new role has none of these; only a superuser may state them (and take them from one that had).
    const denials = db!.superuser ? 'NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS ' : '';
    // Its pools and then some, never the whole server: a release cannot take the appliance's connections.
    // INHERIT: it belongs to no role, but as a scratch database's owner it must have what
    // pg_database_owner has (CREATE on its public schema) for backup verification.
    await client.query(`ALTER ROLE ${ROLE} WITH LOGIN ${denials}INHERIT CONNECTION LIMIT ${Math.trunc(connectionLimit)} PASSWORD ${pg.escapeLiteral(password)}`);
    await client.query(`ALTER ROLE ${ROLE} IN DATABASE ${pg.escapeIdentifier(db!.name)} SET search_path = ${SCHEMA}`);
    // A non-superuser with CREATEROLE gives tables away only to a role it belongs to.
    // (and the new owner of a schema needs CREATE on the database).
    if (!db!.superuser) {
      await client.query(`GRANT ${ROLE} TO CURRENT_USER`);
      await client.query(`GRANT CREATE ON DATABASE ${pg.escapeIdentifier(db!.name)} TO ${ROLE}`);
    }
    await client.query('REVOKE ALL ON SCHEMA public FROM PUBLIC');
    await ownAppSchema(client);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * Gives the app's schema and every table, sequence and view in it to the app's role: after a
 * restore (pg_restore --no-owner recreates them as whoever restores) and at every boot.
 * A no-op while the role or the schema does not exist (before the migration that makes the schema).
 */
export async function ownAppSchema(client: pg.Client): Promise<void> {
  const { rows: [has] } = await client.query<{ role: boolean; schema: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS role, EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2) AS schema', [APP_ROLE, APP_SCHEMA]);
  if (!has!.role || !has!.schema) return;
  await client.query(`ALTER SCHEMA ${SCHEMA} OWNER TO ${ROLE}`);
  // Sequences owned by a column follow their table; only the others are given separately.
  const { rows } = await client.query<{ kind: string; name: string }>(
    `SELECT c.relkind AS kind, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
        AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
        AND pg_get_userbyid(c.relowner) <> $2`, [APP_SCHEMA, APP_ROLE]);
  const verb: Record<string, string> = { r: 'TABLE', p: 'TABLE', f: 'FOREIGN TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', S: 'SEQUENCE' };
  for (const { kind, name } of rows) {
    await client.query(`ALTER ${verb[kind]} ${SCHEMA}.${pg.escapeIdentifier(name)} OWNER TO ${ROLE}`);
  }
}

/** The same server and database as `url`, as the app's role. */
export function appRoleUrl(url: string, password: string): string {
  const u = new URL(url);
  u.username = APP_ROLE;
  u.password = encodeURIComponent(password);
  return u.toString();
}
