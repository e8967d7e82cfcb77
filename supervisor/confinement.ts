// Who a release runs as and what it gets: its own unprivileged user when the supervisor is root, an
// env of allowed names only (no appliance secret, no cloud credential), the app's own Postgres role
// and Redis user. The release's process applies it (supervisor/release-entry.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { configToEnv, envNameOf, type Color, type Config } from '../lib/config.js';
import { RELEASE_ENV, RELEASE_GID, RELEASE_MAIN, RELEASE_UID, RELEASE_VARS } from '../lib/contracts/release-process.js';
import { CL_ERR_RELEASE_USER } from '../lib/errors.js';

/** Who the app is to embedded Redis: an ACL user that cannot run admin or dangerous commands (first-boot.ts writes it). */
export const APP_REDIS_USER = 'changelens-app';

export interface ReleaseUser {
  name: string;
  uid: number;
  gid: number;
}

/** A user's uid and primary gid (`id`, so NSS users count too); undefined when there is none. */
export function userIds(name: string): { uid: number; gid: number } | undefined {
  try {
    const id = (flag: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

/**
 * The release user when the supervisor is root. Missing, root, sharing the service user's ids, or
 * unable to read the code it must run (a checkout under a closed home directory): the boot fails,
 * naming the fix. Releases never quietly run as root.
 */
export function resolveReleaseUser(config: Config, serviceUser: ReleaseUser | undefined, code: readonly string[]): { user: ReleaseUser } | { off: string } {
  if (process.getuid?.() !== 0) return { off: 'the supervisor does not run as root, so releases run as its user' };
  const name = config.releaseUser;
  const ids = userIds(name);
  if (!ids) throw new CL_ERR_RELEASE_USER(`"${name}" does not exist`);
  const { uid, gid } = ids;
  if (uid === 0 || gid === 0) throw new CL_ERR_RELEASE_USER(`"${name}" is root (uid ${uid}, gid ${gid})`);
  if (serviceUser && (uid === serviceUser.uid || gid === serviceUser.gid)) throw new CL_ERR_RELEASE_USER(`"${name}" shares its user or group with the service user ${serviceUser.name}, who owns Postgres's and Redis's files`);
  for (const path of code) {
    // libuv drops the supplementary groups too: exactly what the release will have.
    const probe = spawnSync('test', ['-r', path], { uid, gid, stdio: 'ignore' });
    if (probe.status !== 0) throw new CL_ERR_RELEASE_USER(`"${name}" cannot read ${path} (a directory above it is closed to others): install ChangeLens where every user can read it (e.g. under /opt or /srv)`);
  }
  return { user: { name, uid, gid } };
}

/** A credential of the app's, derived from the appliance's own: appliances sharing a database derive the same. */
export function appPassword(appliancePassword: string, purpose: 'postgres' | 'redis'): string {
  return createHmac('sha256', appliancePassword).update(`changelens-app:${purpose}`).digest('base64url');
}

/** What the built-in API and worker read of the appliance's settings (apps/api/main.ts, apps/worker/main.ts); nothing else of them reaches a release. */
const BUILTIN_SETTINGS = ['logLevel', 'otlpEndpoint', 'downstreamTimeoutMs', 'apiBluePort', 'apiGreenPort', 'workerBluePort', 'workerGreenPort', 'workerConcurrency', 'jobMaxAttempts', 'jobClaimIdleMs'] as const;
/** Of those and the colour's own, what only the built-in API and worker get (another app gets PORT, its colour and trace endpoint). */
export const BUILTIN_ONLY = ['logLevel', 'downstreamTimeoutMs', 'apiBluePort', 'apiGreenPort', 'workerBluePort', 'workerGreenPort', 'workerConcurrency', 'jobMaxAttempts', 'jobClaimIdleMs', 'appControlToken'] as const;

/**
 * A colour's env before its release's own settings: the app's URLs, its colour, the few settings
 * the built-in API reads, and whom the entry runs the release as.
 */
export function releaseEnvironment(config: Config, app: { database: string; redis: string }, color: Color, user: ReleaseUser | null): Record<string, string> {
  const all = configToEnv(config);
  const env: Record<string, string> = {};
  for (const key of BUILTIN_SETTINGS) {
    const name = envNameOf(key);
    if (all[name] !== undefined) env[name] = all[name];
  }
  if (user) {
    env[RELEASE_UID] = String(user.uid);
    env[RELEASE_GID] = String(user.gid);
  }
  return { ...inheritedBasics(), ...env, [envNameOf('color')]: color, DATABASE_URL: app.database, REDIS_URL: app.redis, NODE_ENV: 'production' };
}

/**
 * The entry's instructions, last: what to run, the names of the appliance's variables to keep
 * (what is given here; nothing inherited), and the release's own variables, sealed from pm2.
 */
export function confineEnv(env: Record<string, string>, main: string, releaseVars: Record<string, string>): Record<string, string> {
  const own = new Set([RELEASE_MAIN, RELEASE_ENV, RELEASE_UID, RELEASE_GID, RELEASE_VARS]);
  const names = Object.keys(env).filter((name) => !own.has(name));
  return {
    ...env,
    [RELEASE_MAIN]: main,
    [RELEASE_ENV]: names.join(','),
    [RELEASE_VARS]: Buffer.from(JSON.stringify(releaseVars)).toString('base64'),
  };
}

/** What a cluster worker (the proxy, the API colours) inherits from the supervisor's env: locale and trust, no secret. */
const INHERITED = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'NODE_EXTRA_CA_CERTS'] as const;

/**
 * pm2 runs in the supervisor's process, and Node's cluster gives every worker it forks the
 * primary's whole env ({ ...process.env, ...env }): whatever the operator exported (the admin
 * token, cloud credentials) would sit in a release's memory from its first instruction. Each fork
 * sees only the inherited basics instead; the supervisor keeps its env (the S3 SDK reads it).
 */
export function forkWorkersWithoutOurEnv(cluster: { fork: (env?: object) => unknown }): void {
  const fork = cluster.fork;
  if ((fork as { withoutOurEnv?: true }).withoutOurEnv) return;
  cluster.fork = Object.assign(function forkWithoutOurEnv(this: unknown, env?: object) {
    const ours = process.env;
    process.env = Object.fromEntries(INHERITED.filter((name) => ours[name] !== undefined).map((name) => [name, ours[name]]));
    try {
      return fork.call(this, env);
    } finally {
      process.env = ours;
    }
  }, { withoutOurEnv: true as const });
}

/** The basics a release keeps from the supervisor, given to it explicitly (pm2 inherits nothing for it: filter_env ['']). */
export function inheritedBasics(): Record<string, string> {
  return Object.fromEntries(INHERITED.filter((name) => process.env[name] !== undefined).map((name) => [name, process.env[name]!]));
}

interface ClusterLike {
  on(event: 'fork', listener: (worker: { process: { emit: (event: string | symbol, ...args: unknown[]) => boolean; kill(signal?: string): boolean } }) => void): unknown;
}
interface QueryServer { cmd?: unknown; act?: unknown; fd?: unknown; port?: unknown; addressType?: unknown; address?: unknown }

/**
 * A release is a cluster worker of the supervisor's process, and a cluster worker's listen() is
 * carried out by the primary: whatever it asks, as root, on the primary's side: a file descriptor
 * number (listen({ fd }) adopts that fd of the supervisor's: the public port, its Postgres
 * connection), a Unix socket path, a UDP port, any port. An API colour may ask for exactly one
 * thing, TCP on its own port; anything else is dropped (its listen never completes) and logged.
 */
export function guardReleaseListens(cluster: ClusterLike, portOf: (name: string) => number | undefined, refused: (name: string, what: string) => void): void {
  cluster.on('fork', (worker) => {
    // pm2 labels the worker right after fork() returns, before this event (next tick).
    const name = (worker as { pm2_env?: { name?: unknown } }).pm2_env?.name;
    if (typeof name !== 'string') return;
    const port = portOf(name);
    if (port === undefined) return;
    const emit = worker.process.emit;
    worker.process.emit = function guardedEmit(this: unknown, event: string | symbol, ...args: unknown[]): boolean {
      const m = args[0] as QueryServer | undefined;
      if (event === 'internalMessage' && m?.cmd === 'NODE_CLUSTER' && m.act === 'queryServer') {
        const own = (m.fd === undefined || m.fd === null) && m.port === port && (m.addressType === 4 || m.addressType === 6);
        if (!own) {
          refused(name, `listen ${JSON.stringify({ address: m.address, port: m.port, addressType: m.addressType, fd: m.fd })}`);
          return false;
        }
      }
      return emit.call(this, event, ...args);
    };
  });
}
