// The services' addresses (embedded or external) and the environment every Node process gets.
import { configToEnv, envNameOf, type Config } from '../lib/config.js';
import { APP_ROLE, appRoleUrl } from '../lib/app-database.js';
import { CL_ERR_APP_ROLE } from '../lib/errors.js';
import { APP_REDIS_USER, appPassword } from './confinement.js';
import { PG_DATABASE, PG_USER, type Secrets } from './first-boot.js';

export function embeddedUrl(password: string, port: number, database: string): string {
  return `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

export interface ServiceUrls {
  /** The appliance's own: its Postgres superuser (embedded) or the operator's URL, Redis's default user. */
  database: string;
  redis: string;
  /** What release code and the worker connect with: the app's Postgres role; embedded Redis's app user. */
  app: { database: string; redis: string };
}

export function effectiveUrls(config: Config, secrets: Secrets): ServiceUrls {
  const database = config.databaseUrl ?? embeddedUrl(secrets.pgPassword, config.pgPort, PG_DATABASE);
  const redis = config.redisUrl ?? `redis://default:${encodeURIComponent(secrets.redisPassword)}@127.0.0.1:${config.redisPort}`;
  // External Redis is the operator's: its users are theirs to make (the app shares the URL; status says so).
  const appRedis = config.redisUrl ?? `redis://${APP_REDIS_USER}:${encodeURIComponent(appPassword(secrets.redisPassword, 'redis'))}@127.0.0.1:${config.redisPort}`;
  return { database, redis, app: { database: appRoleUrl(database, appDatabasePassword(database)), redis: appRedis } };
}

/** The app role's password: from the appliance's database password, the same on every appliance sharing the database. */
export function appDatabasePassword(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  // Derived from nothing secret, it would be a password anyone can compute.
  if (u.password === '') throw new CL_ERR_APP_ROLE(APP_ROLE, 'DATABASE_URL carries no password, and the role\'s is derived from it: put the password in the URL');
  return appPassword(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`, 'postgres');
}

/** The env every Node process gets: the same config and the effective service URLs. */
export function childEnvironment(config: Config, urls: { database: string; redis: string }): Record<string, string> {
  const env = configToEnv(config);
  delete env[envNameOf('pgPassword')];
  delete env[envNameOf('redisPassword')];
  // Per colour (colorEnv), never shared: a regression belongs to one release.
  delete env[envNameOf('regression')];
  delete env[envNameOf('releaseId')];
  // The admin token goes to the proxy only (proxyEnv): the APIs run release code. So do the
  // hooks (their URLs and command are often secret); the backup key stays with the supervisor.
  for (const key of ['adminToken', 'backupKey', 'releaseSecretsKey', 'appControlToken', 'hookUrls', 'hookCommand', 'notify', 'gateUrl'] as const) delete env[envNameOf(key)];
  return { ...env, DATABASE_URL: urls.database, REDIS_URL: urls.redis, NODE_ENV: 'production' };
}
