// Everything `up` prepares before the first process starts: the data dir, the secrets, the
// unprivileged service user, the binaries, and — on the first boot only — the Postgres cluster.
// Later boots find all of it and change nothing. Nothing is ever left half-written: files are
// written to a temp name and renamed, initdb runs into a temp dir that is renamed when complete.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, chmodSync, chownSync, constants, existsSync, lchownSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { strongAdminToken, type Config } from '../lib/config.js';
import { CL_ERR_CONFIG_INVALID, CL_ERR_DATA_DIR, CL_ERR_INITDB_FAILED, CL_ERR_MISSING_BINARY, CL_ERR_SERVICE_USER } from '../lib/errors.js';
import type { DataPaths } from '../lib/paths.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { APP_REDIS_USER, appPassword, userIds } from './confinement.js';

const execFileAsync = promisify(execFile);

export const PG_USER = 'changelens';
export const PG_DATABASE = 'changelens';

export interface Secrets {
  adminToken: string;
  pgPassword: string;
  redisPassword: string;
  /** Encrypts backups (CHANGELENS_BACKUP_ENCRYPT=1); generated even when unused, so turning encryption on needs no reboot dance. */
  backupKey: string;
}

/** The unprivileged account Postgres (which refuses root) and Redis run as when we are root. */
export interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
}

export function resolveServiceUser(config: Config): ServiceUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const ids = userIds(config.serviceUser);
  if (!ids) throw new CL_ERR_SERVICE_USER(config.serviceUser);
  if (ids.uid === 0) throw new CL_ERR_SERVICE_USER(`${config.serviceUser} (it is root)`);
  return { name: config.serviceUser, ...ids };
}

/** The newest /usr/lib/postgresql/<major>/bin holding `program` (where Debian keeps each major's binaries). */
function debianPgBinDir(program: string): string | undefined {
  const majors = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').filter((d) => /^\d+$/.test(d)).map(Number).sort((a, b) => b - a) : [];
  return majors.map((m) => `/usr/lib/postgresql/${m}/bin`).find((d) => isExecutable(join(d, program)));
}

export function resolveBinaries(config: Config, needs: { postgres: boolean; redis: boolean }): { postgres: string; initdb: string; redisServer: string; pgToolsDir: string | undefined } {
  let pgBinDir = config.pgBinDir;
  if (pgBinDir === undefined && needs.postgres) {
    pgBinDir = debianPgBinDir('postgres') ?? dirnameOnPath('postgres');
    if (pgBinDir === undefined) throw new CL_ERR_MISSING_BINARY('postgres', 'looked in /usr/lib/postgresql/*/bin and PATH; set CHANGELENS_PG_BIN_DIR');
  }
  const postgres = pgBinDir ? join(pgBinDir, 'postgres') : '';
  const initdb = pgBinDir ? join(pgBinDir, 'initdb') : '';
  if (needs.postgres) {
    for (const bin of [postgres, initdb]) if (!isExecutable(bin)) throw new CL_ERR_MISSING_BINARY(bin, 'CHANGELENS_PG_BIN_DIR');
  }
  let redisServer = '';
  if (needs.redis) {
    const candidate = config.redisServer.includes('/') ? config.redisServer : whichOnPath(config.redisServer);
    if (candidate === undefined || !isExecutable(candidate)) throw new CL_ERR_MISSING_BINARY(config.redisServer, 'CHANGELENS_REDIS_SERVER');
    redisServer = candidate;
  }
  // pg_dump and pg_restore, external Postgres included: the binaries themselves, not Debian's
  // /usr/bin wrappers (perl scripts; the image has no perl). Undefined: whatever PATH holds.
  const pgToolsDir = pgBinDir ?? debianPgBinDir('pg_dump');
  return { postgres, initdb, redisServer, pgToolsDir };
}

/** Creates the data dir's folders with the right owners and modes; idempotent. */
export function prepareDataDir(paths: DataPaths, user: ServiceUser | undefined, embedded: { postgres: boolean; redis: boolean }, releaseUser?: { gid: number }): void {
  try {
    mkdirSync(paths.root, { recursive: true, mode: 0o711 });
    // The service user must be able to reach its folders through the root (not list it), and
    // through every directory above it.
    if (user) {
      chmodSync(paths.root, statSync(paths.root).mode | 0o111);
      for (let dir = dirname(paths.root); dir !== dirname(dir); dir = dirname(dir)) {
        if ((statSync(dir).mode & 0o001) === 0) {
          throw new CL_ERR_DATA_DIR(paths.root, `${dir} is not traversable by the service user ${user.name}, who runs Postgres; choose a data dir it can reach (e.g. CHANGELENS_DATA_DIR=/var/lib/changelens)`);
        }
      }
    }
    for (const dir of [paths.backups, paths.releases]) mkdirSync(dir, { recursive: true, mode: 0o750 });
    // The releases' user reads (only) the releases: the group is theirs; state/, backups/, Postgres's
    // and Redis's folders stay closed to it.
    // The proxy (the service user, when root) writes them: uploads unpack there.
    if (releaseUser || user) {
      chownSync(paths.releases, user?.uid ?? statSync(paths.releases).uid, releaseUser?.gid ?? statSync(paths.releases).gid);
      chmodSync(paths.releases, 0o750);
    }
    mkdirSync(paths.state, { recursive: true, mode: 0o700 });
    mkdirSync(paths.pm2Home, { recursive: true, mode: 0o700 });
    mkdirSync(paths.proxyState, { recursive: true, mode: 0o700 });
    // Before 0.2 routing.json sat in state/ itself.
    const before = join(paths.state, 'routing.json');
    if (existsSync(before) && !existsSync(paths.routing)) renameSync(before, paths.routing);
    if (process.getuid?.() === 0) {
      // Root works by path only in folders no one else can write: the data dir, state/ (enterable:
      // the proxy reaches the supervisor's socket and its own folder), secrets, pm2's home, the run
      // log, backups. An older image ran everything as the service user, who owned them all.
      // The data dir itself may be a link the operator made (it is followed); nothing inside may.
      if (statSync(paths.root).uid !== 0) chownSync(paths.root, 0, 0);
      for (const [path, mode] of [[paths.state, 0o711], [paths.pm2Home, 0o700], [paths.backups, 0o750], [paths.secrets, 0o600], [paths.runLog, 0o600]] as const) ownAsRoot(paths.root, path, mode);
    }
    // The proxy runs as the service user: it rewrites routing.json (a rename in its own folder).
    if (user) chownSync(paths.proxyState, user.uid, user.gid);
    if (embedded.redis) {
      mkdirSync(paths.redis, { recursive: true, mode: 0o700 });
      if (user) chownSync(paths.redis, user.uid, user.gid);
    }
    accessSync(paths.state, constants.W_OK);
  } catch (err) {
    if (err instanceof CL_ERR_DATA_DIR) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new CL_ERR_DATA_DIR(paths.root, `${e.code ?? ''} ${e.message}`.trim(), { cause: err });
  }
}

/** Gives `path` to root with `mode`, if it exists; a link there (planted by another user) fails the boot. */
function ownAsRoot(root: string, path: string, mode: number): void {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (stat.isSymbolicLink()) throw new CL_ERR_DATA_DIR(root, `${path} is a symbolic link; the data dir's own folders and files are never links`);
  if (stat.uid !== 0 || stat.gid !== 0) lchownSync(path, 0, 0);
  if ((stat.mode & 0o7777) !== mode) chmodSync(path, mode);
}

/** Reads state/secrets.json, lets env-given values win, generates what is missing, and persists (0600). */
export function ensureSecrets(paths: DataPaths, config: Config, initialised: boolean): { secrets: Secrets; generated: (keyof Secrets)[] } {
  let stored: Partial<Secrets> = {};
  if (existsSync(paths.secrets)) {
    try {
      stored = JSON.parse(readFileSync(paths.secrets, 'utf8')) as Partial<Secrets>;
    } catch (err) {
      throw new CL_ERR_DATA_DIR(paths.root, `${paths.secrets} is not valid JSON; restore it from a backup`, { cause: err });
    }
  }
  // Postgres keeps the password it was initialised with: a different one from the env would lock
  // us out and, once persisted, lose the only copy of the working one.
  if (initialised && config.pgPassword !== undefined && typeof stored.pgPassword === 'string' && config.pgPassword !== stored.pgPassword) {
    throw new CL_ERR_CONFIG_INVALID(`  - CHANGELENS_PG_PASSWORD: differs from the password Postgres was initialised with (kept in ${paths.secrets}); to change it, run ALTER ROLE ${PG_USER} PASSWORD '…' first, then set both`);
  }
  const generated: (keyof Secrets)[] = [];
  const pick = (key: keyof Secrets): string => {
    const fromEnv = config[key];
    if (fromEnv !== undefined) return fromEnv;
    const existing = stored[key];
    if (key === 'adminToken' && typeof existing === 'string' && !strongAdminToken(existing)) {
      throw new CL_ERR_CONFIG_INVALID(`  - adminToken in ${paths.secrets}: expected at least 32 characters of [A-Za-z0-9_-.~+/=], at least 10 of them different; set CHANGELENS_ADMIN_TOKEN to a strong one (openssl rand -base64 32), or delete the entry to have one generated`);
    }
    if (typeof existing === 'string' && existing.length >= 16) return existing;
    generated.push(key);
    return randomBytes(32).toString('base64url'); // 256 bits
  };
  const secrets: Secrets = { adminToken: pick('adminToken'), pgPassword: pick('pgPassword'), redisPassword: pick('redisPassword'), backupKey: pick('backupKey') };
  if (JSON.stringify(secrets) !== JSON.stringify({ adminToken: stored.adminToken, pgPassword: stored.pgPassword, redisPassword: stored.redisPassword, backupKey: stored.backupKey })) {
    writeFileAtomic(paths.secrets, JSON.stringify(secrets, null, 2) + '\n', 0o600);
  }
  return { secrets, generated };
}

export function isInitialised(paths: DataPaths): boolean {
  return existsSync(join(paths.postgres, 'PG_VERSION'));
}

/**
 * Runs initdb (scram auth, our superuser with the generated password) into a temp dir and renames
 * it into place only when complete, so a failed or interrupted first boot leaves nothing behind.
 */
export async function initPostgres(paths: DataPaths, initdb: string, password: string, user: ServiceUser | undefined): Promise<void> {
  const tmp = `${paths.postgres}.initdb-tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  const pwfile = join(tmp, '..', `.pgpass-${process.pid}`);
  writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (user) {
    chownSync(tmp, user.uid, user.gid);
    chownSync(pwfile, user.uid, user.gid);
  }
  try {
    await execFileAsync(initdb, [
      '-D', tmp, `--username=${PG_USER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256',
      '--encoding=UTF8', '--locale=C', '--no-instructions',
    ], { ...(user ? { uid: user.uid, gid: user.gid } : {}), env: { ...process.env, LC_ALL: 'C' }, cwd: '/' });
    renameSync(tmp, paths.postgres);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    const e = err as { stderr?: string; message: string };
    throw new CL_ERR_INITDB_FAILED((e.stderr || e.message).trim().split('\n').slice(-5).join(' | '), { cause: err });
  } finally {
    rmSync(pwfile, { force: true });
  }
}

/** Redis's config: port, password and persistence (AOF, fsync every second), rewritten each boot. */
export function writeRedisConf(paths: DataPaths, port: number, password: string, user: ServiceUser | undefined): void {
  const conf = [
    `port ${port}`,
    'bind 127.0.0.1',
    'protected-mode yes',
    `requirepass ${password}`,
    // The app's own user (release code and the worker): every key and channel, no admin or
    // dangerous command (CONFIG, FLUSHALL, KEYS, DEBUG, SHUTDOWN, ACL, MONITOR…). Only the hash of
    // its password is written.
    `user ${APP_REDIS_USER} reset on #${createHash('sha256').update(appPassword(password, 'redis')).digest('hex')} ~* &* +@all -@admin -@dangerous`,
    `dir ${paths.redis}`,
    'daemonize no',
    'supervised no',
    'logfile ""',
    'appendonly yes',
    'appendfsync everysec',
    // A snapshot on shutdown too (SIGINT/SIGTERM save when save points exist).
    'save 3600 1 300 100 60 10000',
    'maxmemory-policy noeviction',
    '',
  ].join('\n');
  writeFileAtomic(paths.redisConf, conf, 0o600, user);
}


function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function whichOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function dirnameOnPath(name: string): string | undefined {
  const found = whichOnPath(name);
  return found === undefined ? undefined : join(found, '..');
}
