// Everything `up` does before the first process starts, while it holds the data dir: the ports it
// will claim, the control socket (the lock), the data dir prepared (first boot: secrets, initdb),
// the secrets announced once.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { envNameOf, type Config } from '../lib/config.js';
import { CL_ERR_DATA_DIR } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { distDir } from '../lib/package-root.js';
import type { DataPaths } from '../lib/paths.js';
import { resolveReleaseUser } from './confinement.js';
import { startControlServer, type ControlRoute } from './control-socket.js';
import { ensureSecrets, initPostgres, isInitialised, prepareDataDir, resolveBinaries, resolveServiceUser, writeRedisConf, type Secrets } from './first-boot.js';
import type { assertDataSurvives } from './platform.js';
import type { PortClaim } from './ports.js';

export function portClaims(config: Config, embedded: { postgres: boolean; redis: boolean }): PortClaim[] {
  const local = '127.0.0.1';
  const claims: PortClaim[] = [
    { port: config.port, host: config.host, setting: envNameOf('port'), service: 'proxy' },
    { port: config.apiBluePort, host: local, setting: envNameOf('apiBluePort'), service: 'api-blue' },
    { port: config.apiGreenPort, host: local, setting: envNameOf('apiGreenPort'), service: 'api-green' },
    { port: config.workerBluePort, host: local, setting: envNameOf('workerBluePort'), service: 'worker-blue' },
    { port: config.workerGreenPort, host: local, setting: envNameOf('workerGreenPort'), service: 'worker-green' },
  ];
  if (embedded.postgres) claims.push({ port: config.pgPort, host: local, setting: envNameOf('pgPort'), service: 'postgres' });
  if (embedded.redis) claims.push({ port: config.redisPort, host: local, setting: envNameOf('redisPort'), service: 'redis' });
  return claims;
}

/** Creates just the state dir (and pm2's home in it) and binds the control socket there. */
export async function bindControlSocket(paths: DataPaths, routes: ControlRoute[]) {
  try {
    mkdirSync(paths.pm2Home, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CL_ERR_DATA_DIR(paths.root, (err as Error).message, { cause: err });
  }
  return startControlServer(paths.controlSocket, routes);
}

/** Everything before the first process starts; runs while the data dir's lock is held. */
export async function prepare(config: Config, paths: DataPaths, embedded: { postgres: boolean; redis: boolean }, log: Logger, mount: ReturnType<typeof assertDataSurvives>) {
  if (mount && !mount.durable) log.warn({ dataDir: paths.root, mount }, 'demo mode (CHANGELENS_EPHEMERAL=1): the data dir does not survive this instance');
  // As root, whatever is embedded: the proxy runs as the service user too.
  const serviceUser = resolveServiceUser(config);
  const bin = resolveBinaries(config, embedded);
  // Releases run as their own user, who must read the code it runs (the entry, the built-in API and worker).
  const confined = resolveReleaseUser(config, serviceUser, [join(distDir, 'supervisor', 'release-entry.js'), join(distDir, 'apps', 'api', 'main.js'), join(distDir, 'apps', 'worker', 'main.js')]);
  prepareDataDir(paths, serviceUser, embedded, 'user' in confined ? confined.user : undefined);
  const firstBoot = embedded.postgres && !isInitialised(paths);
  const { secrets, generated } = ensureSecrets(paths, config, !firstBoot && embedded.postgres);
  if (firstBoot) {
    log.info({ dataDir: paths.root }, 'first boot: initialising Postgres (initdb, scram-sha-256)');
    await initPostgres(paths, bin.initdb, secrets.pgPassword, serviceUser);
  }
  if (embedded.redis) writeRedisConf(paths, config.redisPort, secrets.redisPassword, serviceUser);
  announceSecrets(log, paths, generated, secrets);
  return { serviceUser, bin, secrets, firstBoot, confined };
}

function announceSecrets(log: Logger, paths: DataPaths, generated: readonly string[], secrets: Secrets): void {
  if (generated.length === 0) return;
  log.info({ generated, file: paths.secrets }, 'generated secrets (mode 0600)');
  // Printed once, to a person at a terminal; never into the JSON logs.
  if (generated.includes('adminToken') && process.stderr.isTTY) {
    process.stderr.write(`\nchangelens: admin token (shown once; also in ${paths.secrets}):\n  ${secrets.adminToken}\n\n`);
  }
}
