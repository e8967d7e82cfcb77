// `changelens up`: the foreground supervisor. Prepares the data dir (first boot: secrets, initdb),
// boots the process graph of ecosystem.config.js in dependency order with real readiness probes,
// serves status on its control socket, and on SIGTERM/SIGINT stops everything in reverse order.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { format } from 'node:util';
import { pino } from 'pino';
import { processGraph } from '../ecosystem.config.js';
import { configToEnv, envNameOf, loadConfig, type Config } from '../lib/config.js';
import { ChangeLensError, CL_ERR_DATA_DIR, CL_ERR_PROCESS_CONTROL } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { distDir, migrationsDir } from '../lib/package-root.js';
import { dataPaths, type DataPaths } from '../lib/paths.js';
import { readRoutingSnapshot, writeRoutingSnapshot, type RoutingSnapshot } from '../lib/routing-snapshot.js';
import type { ApplianceStatus } from '../lib/contracts/status.js';
import { BUILTIN_ARTIFACT, resolveArtifactEntry, validateReleaseEnv, type ArtifactEntry } from '../lib/contracts/releases.js';
import { bootGraph } from './boot.js';
import { claimControlSocket, startControlServer, type ControlRoute } from './control-socket.js';
import { ensureSecrets, initPostgres, isInitialised, PG_DATABASE, PG_USER, prepareDataDir, resolveBinaries, resolveServiceUser, writeRedisConf, type Secrets } from './first-boot.js';
import { applyMigrations, ensureDatabase, readMigrations } from './migrations.js';
import { assertPortsFree, type PortClaim } from './ports.js';
import { bootNodes, orderGraph, type GraphContext, type GraphNode } from './process-graph.js';
import { nodeForRelease, ProcessControl } from './process-control.js';
import { seedItems } from '../apps/api/index.js';
import { ProcessManager, type LogLine } from './process-manager.js';
import { collectStatus } from './status.js';
import { startMonitor } from './monitor.js';
import { reapOrphans } from './orphans.js';
import { assertDataSurvives } from './platform.js';
import { firstStart, recordRun } from './run-log.js';
import { startBackups } from './backups.js';

export interface UpOptions {
  configFile?: string | undefined;
}

/** Runs until stopped by a signal; resolves with the exit code. Throws (after cleaning up) when the boot fails. */
export async function runUp(options: UpOptions = {}): Promise<number> {
  const startedAt = new Date();
  const t0 = performance.now();
  const config = loadConfig({ file: options.configFile });
  const out = pino.destination({ fd: 1, sync: false });
  const log = createLogger('supervisor', { level: config.logLevel, destination: out });
  const paths = dataPaths(config.dataDir);
  const embedded = { postgres: config.databaseUrl === undefined, redis: config.redisUrl === undefined };

  // Refused before anything is written: another supervisor here, a taken port, a data dir that
  // would not survive on a cloud platform.
  await claimControlSocket(paths.controlSocket, paths.root);
  // No supervisor answers on this data dir, so anything pm2 left running is an orphan of one that
  // died; it holds the ports, so it goes before the port check. (Reaping writes nothing new.)
  const orphans = await reapOrphans(paths.pm2Home);
  if (orphans.length > 0) log.warn({ orphans }, 'stopped processes left running by a supervisor that did not shut down');
  await assertPortsFree(portClaims(config, embedded));
  const mount = assertDataSurvives(config, paths.root, embedded.postgres);

  // Hold the data dir from here on: the control socket is the lock, answering "booting" at once,
  // so a second `up` cannot race this one through secrets, initdb or orphan reaping.
  let phase: ApplianceStatus['phase'] = 'booting';
  let statusNow: () => unknown = () => ({ schemaVersion: 1, running: true, phase, supervisorPid: process.pid, dataDir: paths.root });
  const routes: ControlRoute[] = [{ method: 'GET', path: /^\/status$/, handler: () => statusNow() }];
  const server = await bindControlSocket(paths, routes);
  const releaseLock = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

  let prepared: Awaited<ReturnType<typeof prepare>>;
  let connecting: Promise<ProcessManager>;
  try {
    // pm2 starts (in this process) while the data dir is prepared: neither needs the other.
    routeConsoleTo(log.child({ component: 'pm2' }));
    connecting = ProcessManager.connect(paths.pm2Home);
    connecting.catch(() => {}); // awaited below; a failure of prepare() is reported first
    prepared = await prepare(config, paths, embedded, log, mount);
  } catch (err) {
    await releaseLock();
    throw err;
  }
  const { serviceUser, bin, secrets, firstBoot } = prepared;

  const snapshot = readRoutingSnapshot(paths.routing) ?? writeRoutingSnapshot(paths.routing, 'blue');
  const activeColor = snapshot.activeColor;
  const urls = effectiveUrls(config, secrets);
  const childEnv = childEnvironment(config, urls, secrets);
  // The release that boots carries its regressions from birth; the idle colour gets a release's
  // own settings when it is started for one.
  const colorEnv: GraphContext['colorEnv'] = { blue: {}, green: {} };
  // The active release (as the last promotion snapshotted it) is what the active colour runs.
  const activeRelease = bootRelease(paths, snapshot);
  Object.assign(colorEnv[activeColor], activeRelease.env);
  colorEnv[activeColor][envNameOf('releaseId')] = newReleaseId();
  if (config.regression !== undefined) colorEnv[activeColor][envNameOf('regression')] = config.regression;
  const proxyEnv = { [envNameOf('adminToken')]: secrets.adminToken };
  const graph = processGraph({ config, paths, activeColor, bin, serviceUser: serviceUser?.name, childEnv, colorEnv, proxyEnv, distDir, embedded })
    .map((node) => (node.name === `api-${activeColor}` && activeRelease.artifact ? nodeForRelease(node, {}, activeRelease.artifact) : node));
  const nodes = bootNodes(graph);
  const migrations = readMigrations(migrationsDir);

  const pm = await connecting;
  pm.onLine((line) => forwardLine(out, line));

  const boot = { startedAt, firstBoot, durationMs: null as number | null, readyMs: {} as Record<string, number> };
  const readyTimeoutMs = config.readyTimeoutMs;
  const interrupt = new AbortController();
  const control = new ProcessControl(orderGraph(graph), { pm, log, urls, readyTimeoutMs }, () => readRoutingSnapshot(paths.routing)?.activeColor ?? activeColor, interrupt.signal);
  let monitoring: ReturnType<typeof startMonitor> = null;
  let backups: ReturnType<typeof startBackups> | null = null;
  statusNow = async () => ({ ...await collectStatus({ pm, graph, paths, urls, embedded, fallbackColor: activeColor, boot, phase: () => phase }), monitor: monitoring?.monitor.status() ?? null, backups: backups?.summary() ?? null });
  // Starting or stopping a colour only makes sense between the end of the boot and the stop.
  const whenReady = <T>(fn: () => Promise<T>): Promise<T> =>
    phase === 'ready' ? fn() : Promise.reject(new CL_ERR_PROCESS_CONTROL(`the appliance is ${phase}; try again when it is ready`));
  routes.push(
    { method: 'POST', path: /^\/processes\/([a-z-]+)\/start(?:\?(.*))?$/, handler: (name, query) => whenReady(() => control.start(name!, releaseEnv(config, query), releaseArtifact(paths, query))) },
    { method: 'POST', path: /^\/processes\/([a-z-]+)\/stop$/, handler: (name) => whenReady(() => control.stop(name!)) },
    // For the proxy's Prometheus exposition: the monitor's rules, without the full status's probes.
    { method: 'GET', path: /^\/monitor$/, handler: () => monitoring?.monitor.status() ?? null },
    // Cheap, for the rollout controller: is a colour running (started and not stopped), are all its
    // instances online, and how often has pm2 restarted them (a crash is a fast trip).
    { method: 'GET', path: /^\/processes\/([a-z-]+)$/, handler: async (name) => {
      const instances = control.isRunning(name!) ? await pm.describe(name!) : [];
      return {
        name, running: control.isRunning(name!),
        online: instances.length > 0 && instances.every((p) => p.state === 'online'),
        restarts: instances.reduce((n, p) => n + p.restarts, 0),
        pids: instances.map((p) => p.pid),
      };
    } },
  );
  pm.onEvent((e) => {
    if (phase === 'ready' && (e.event === 'exit' || e.event === 'restart overlimit')) {
      log.warn({ process: e.name, event: e.event }, e.event === 'exit' ? `${e.name} exited; pm2 restarts it` : `${e.name} keeps crashing; pm2 gave up restarting it`);
    }
  });

  let stopRequested: (signal: string) => void = () => {};
  const stopSignal = new Promise<string>((resolve) => (stopRequested = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupt.signal.aborted) {
      log.warn({ signal }, 'already stopping');
      return;
    }
    log.info({ signal }, 'stop requested');
    interrupt.abort();
    stopRequested(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const finish = async (code: number): Promise<number> => {
    if (phase === 'ready') recordRun(paths.runLog, 'stop');
    phase = 'stopping';
    await monitoring?.close();
    await backups?.close();
    await control.stopAll(log);
    await releaseLock();
    out.flushSync();
    return code;
  };

  try {
    // Embedded Postgres is ready before our database exists (migrations create it): probe "postgres".
    const probeUrls = { ...urls, database: embedded.postgres ? embeddedUrl(secrets.pgPassword, config.pgPort, 'postgres') : urls.database };
    const result = await bootGraph(nodes, {
      pm, log, urls: probeUrls, readyTimeoutMs, signal: interrupt.signal,
      runTask: (node) => runMigrations(node, log, embedded.postgres, urls, secrets, config, migrations),
    }, { push: (name: string) => control.noteStarted(name) });
    boot.readyMs = result.readyMs;
  } catch (err) {
    phase = 'failed';
    if (interrupt.signal.aborted) {
      log.info('boot interrupted by a signal; stopping what started');
      return finish(0);
    }
    log.error({ err: errorForLog(err) }, 'boot failed; stopping what started');
    await finish(1);
    throw err;
  }

  boot.durationMs = Math.round(performance.now() - t0);
  phase = 'ready';
  recordRun(paths.runLog, 'start');
  log.info({ bootMs: boot.durationMs, firstBoot, activeColor, url: `http://${config.host}:${config.port}` }, 'appliance ready');
  monitoring = startMonitor(config, {
    pm, log, urls, dataDir: paths.root, graph: orderGraph(graph), isRunning: (name) => control.isRunning(name),
    activeColor: () => readRoutingSnapshot(paths.routing)?.activeColor ?? activeColor,
  });
  backups = startBackups({
    config, paths, pm, log, urls,
    pgBinDir: bin.pgToolsDir,
    redisServer: embedded.redis ? bin.redisServer : null,
    graph: orderGraph(graph), isRunning: (name) => control.isRunning(name),
    probe: { pm, log, urls, readyTimeoutMs },
    since: firstStart(paths.runLog) ?? startedAt,
    backupKey: secrets.backupKey,
  });
  routes.push(...backups.routes);

  await stopSignal;
  return finish(0);
}

/** Everything before the first process starts; runs while the data dir's lock is held. */
async function prepare(config: Config, paths: DataPaths, embedded: { postgres: boolean; redis: boolean }, log: Logger, mount: ReturnType<typeof assertDataSurvives>) {
  if (mount && !mount.durable) log.warn({ dataDir: paths.root, mount }, 'demo mode (CHANGELENS_EPHEMERAL=1): the data dir does not survive this instance');
  const serviceUser = embedded.postgres || embedded.redis ? resolveServiceUser(config) : undefined;
  const bin = resolveBinaries(config, embedded);
  prepareDataDir(paths, serviceUser, embedded);
  const firstBoot = embedded.postgres && !isInitialised(paths);
  const { secrets, generated } = ensureSecrets(paths, config, !firstBoot && embedded.postgres);
  if (firstBoot) {
    log.info({ dataDir: paths.root }, 'first boot: initialising Postgres (initdb, scram-sha-256)');
    await initPostgres(paths, bin.initdb, secrets.pgPassword, serviceUser);
  }
  if (embedded.redis) writeRedisConf(paths, config.redisPort, secrets.redisPassword, serviceUser);
  announceSecrets(log, paths, generated, secrets);
  return { serviceUser, bin, secrets, firstBoot };
}

/** Creates just the state dir (and pm2's home in it) and binds the control socket there. */
async function bindControlSocket(paths: DataPaths, routes: ControlRoute[]) {
  try {
    mkdirSync(paths.pm2Home, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CL_ERR_DATA_DIR(paths.root, (err as Error).message, { cause: err });
  }
  return startControlServer(paths.controlSocket, routes);
}

/**
 * A release's own settings for the colour being started, from `?set=KEY%3DVALUE&set=…`: only what
 * a release may carry (lib/contracts/releases.ts), each validated as at boot.
 */
function releaseEnv(config: Config, query: string | undefined): Record<string, string> {
  const given: Record<string, string> = {};
  for (const pair of new URLSearchParams(query ?? '').getAll('set')) {
    const eq = pair.indexOf('=');
    given[eq > 0 ? pair.slice(0, eq) : pair] = eq > 0 ? pair.slice(eq + 1) : '';
  }
  // Our own settings get the same validation as at boot, on the config this colour will run with
  // (a bad value is a configuration error); then what a release may set at all.
  loadConfig({ env: { ...configToEnv(config), ...Object.fromEntries(Object.entries(given).filter(([k]) => k.startsWith('CHANGELENS_'))) } });
  const checked = validateReleaseEnv(given, '--set');
  if ('error' in checked) throw new CL_ERR_PROCESS_CONTROL(checked.error);
  return { ...checked.env, [envNameOf('releaseId')]: newReleaseId() };
}

/** The env and artifact of the release the routing snapshot says is active (the built-in API if none). */
function bootRelease(paths: DataPaths, snapshot: RoutingSnapshot): { env: Record<string, string>; artifact?: ArtifactEntry } {
  const release = snapshot.release;
  if (!release) return { env: {} };
  const checked = validateReleaseEnv(release.env, `${paths.routing}: release.env`);
  if ('error' in checked) throw new CL_ERR_DATA_DIR(paths.root, checked.error);
  if (release.artifact === BUILTIN_ARTIFACT) return { env: checked.env };
  const entry = resolveArtifactEntry(release.artifact);
  if ('error' in entry) throw new CL_ERR_DATA_DIR(paths.root, `active release ${release.version}: ${entry.error}`);
  return { env: checked.env, artifact: entry };
}

/** `?artifact=<dir>`: another app, which must sit under <data>/releases/ (where deploys put them). */
function releaseArtifact(paths: DataPaths, query: string | undefined): ArtifactEntry | undefined {
  const dir = new URLSearchParams(query ?? '').get('artifact');
  if (dir === null || dir === BUILTIN_ARTIFACT) return undefined;
  const resolved = resolvePath(dir);
  if (!resolved.startsWith(paths.releases + '/')) throw new CL_ERR_PROCESS_CONTROL(`artifact ${dir}: expected a directory under ${paths.releases}`);
  const entry = resolveArtifactEntry(resolved);
  if ('error' in entry) throw new CL_ERR_PROCESS_CONTROL(entry.error);
  return entry;
}

/** Identifies one start of a colour: what was changed at run time belongs to it, not to the next. */
function newReleaseId(): string {
  return `r-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

async function runMigrations(node: GraphNode, log: Logger, embeddedPostgres: boolean, urls: { database: string }, secrets: Secrets, config: Config, migrations: ReturnType<typeof readMigrations>): Promise<void> {
  if (embeddedPostgres) {
    const created = await ensureDatabase(embeddedUrl(secrets.pgPassword, config.pgPort, 'postgres'), PG_DATABASE);
    if (created) log.info({ database: PG_DATABASE }, 'database created');
  }
  const applied = await applyMigrations(urls.database, migrations);
  log.info({ task: node.name, applied, total: migrations.length }, applied.length ? `applied migrations ${applied.join(', ')}` : 'migrations up to date');
  const seeded = await seedItems(urls.database, config.seedItems);
  if (seeded > 0) log.info({ rows: seeded }, 'seeded demo items');
}

function portClaims(config: Config, embedded: { postgres: boolean; redis: boolean }): PortClaim[] {
  const local = '127.0.0.1';
  const claims: PortClaim[] = [
    { port: config.port, host: config.host, setting: envNameOf('port'), service: 'proxy' },
    { port: config.apiBluePort, host: local, setting: envNameOf('apiBluePort'), service: 'api-blue' },
    { port: config.apiGreenPort, host: local, setting: envNameOf('apiGreenPort'), service: 'api-green' },
    { port: config.workerPort, host: local, setting: envNameOf('workerPort'), service: 'worker' },
  ];
  if (embedded.postgres) claims.push({ port: config.pgPort, host: local, setting: envNameOf('pgPort'), service: 'postgres' });
  if (embedded.redis) claims.push({ port: config.redisPort, host: local, setting: envNameOf('redisPort'), service: 'redis' });
  return claims;
}

function embeddedUrl(password: string, port: number, database: string): string {
  return `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

function effectiveUrls(config: Config, secrets: Secrets): { database: string; redis: string } {
  return {
    database: config.databaseUrl ?? embeddedUrl(secrets.pgPassword, config.pgPort, PG_DATABASE),
    redis: config.redisUrl ?? `redis://default:${encodeURIComponent(secrets.redisPassword)}@127.0.0.1:${config.redisPort}`,
  };
}

/** The env every Node process gets: the same config and the effective service URLs. */
function childEnvironment(config: Config, urls: { database: string; redis: string }, secrets: Secrets): Record<string, string> {
  const env = configToEnv(config);
  delete env[envNameOf('pgPassword')];
  delete env[envNameOf('redisPassword')];
  // Per colour (colorEnv), never shared: a regression belongs to one release.
  delete env[envNameOf('regression')];
  delete env[envNameOf('releaseId')];
  // The admin token goes to the proxy only (proxyEnv): the APIs run release code.
  delete env[envNameOf('adminToken')];
  return { ...env, DATABASE_URL: urls.database, REDIS_URL: urls.redis, NODE_ENV: 'production' };
}

function announceSecrets(log: Logger, paths: DataPaths, generated: readonly string[], secrets: Secrets): void {
  if (generated.length === 0) return;
  log.info({ generated, file: paths.secrets }, 'generated secrets (mode 0600)');
  // Printed once, to a person at a terminal; never into the JSON logs.
  if (generated.includes('adminToken') && process.stderr.isTTY) {
    process.stderr.write(`\nchangelens: admin token (shown once; also in ${paths.secrets}):\n  ${secrets.adminToken}\n\n`);
  }
}

/** Children's lines go to stdout as they are when they are JSON already; others are wrapped. */
function forwardLine(out: pino.DestinationStream, { name, stream, line }: LogLine): void {
  if (line.startsWith('{') && line.endsWith('}')) {
    out.write(line + '\n');
    return;
  }
  // Postgres marks severity with ERROR/FATAL/PANIC/WARNING; Redis marks warnings with " # ".
  const level = /\b(FATAL|PANIC|ERROR)\b/.test(line) ? 'error' : /\bWARNING\b| # /.test(line) ? 'warn' : 'info';
  out.write(JSON.stringify({ level, time: new Date().toISOString(), service: name, stream, msg: line }) + '\n');
}

/** pm2 prints its own chatter with console.*; keep stdout JSON by routing it into our logger. */
function routeConsoleTo(log: Logger): void {
  console.log = (...args: unknown[]) => log.debug(format(...args));
  console.info = console.log;
  console.warn = (...args: unknown[]) => log.warn(format(...args));
  console.error = console.warn;
}

function errorForLog(err: unknown): object {
  if (err instanceof ChangeLensError) return { code: err.code, message: err.message };
  return err instanceof Error ? { message: err.message, stack: err.stack } : { message: String(err) };
}
