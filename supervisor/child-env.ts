// The services' addresses (embedded or external) and the environment every Node process gets.
import { configToEnv, envNameOf, type Config } from '../lib/config.js';
import { PG_DATABASE, PG_USER, type Secrets } from './first-boot.js';

export function embeddedUrl(password: string, port: number, database: string): string {
  return `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

export function effectiveUrls(config: Config, secrets: Secrets): { database: string; redis: string } {
  return {
    database: config.databaseUrl ?? embeddedUrl(secrets.pgPassword, config.pgPort, PG_DATABASE),
    redis: config.redisUrl ?? `redis://default:${encodeURIComponent(secrets.redisPassword)}@127.0.0.1:${config.redisPort}`,
  };
}

/** The env every Node process gets: the same config and the effective service URLs. */
export function childEnvironment(config: Config, urls: { database: string; redis: string }, secrets: Secrets): Record<string, string> {
  const env = configToEnv(config);
  delete env[envNameOf('pgPassword')];
  delete env[envNameOf('redisPassword')];
  // Per colour (colorEnv), never shared: a regression belongs to one release.
  delete env[envNameOf('regression')];
  delete env[envNameOf('releaseId')];
  // The admin token goes to the proxy only (proxyEnv): the APIs run release code. So do the
  // hooks (their URLs and command are often secret); the backup key stays with the supervisor.
  for (const key of ['adminToken', 'backupKey', 'releaseSecretsKey', 'appControlToken', 'hookUrls', 'hookCommand'] as const) delete env[envNameOf(key)];
  return { ...env, DATABASE_URL: urls.database, REDIS_URL: urls.redis, NODE_ENV: 'production' };
}
