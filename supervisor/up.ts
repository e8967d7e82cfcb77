// `changelens up`: the foreground supervisor. Prepares the data dir (first boot: secrets, initdb),
// boots the process graph of ecosystem.config.js in dependency order with real readiness probes,
// serves status on its control socket, and on SIGTERM/SIGINT stops everything in reverse order.
// This file wires; each step lives in its own file (preflight, release-env, child-env,
// control-routes, log-forwarding, migrations).
import { instanceId } from '../fleet/index.js';
import { chownSync } from 'node:fs';
import { pino } from 'pino';
import { processGraph } from '../ecosystem.config.js';
import { APP_ROLE, APP_SCHEMA } from '../lib/app-database.js';
import { envNameOf, loadConfig, type Color } from '../lib/config.js';
import { appControlToken } from '../lib/contracts/app-control.js';
import { releaseSecretsKey } from '../lib/contracts/release-secrets.js';
import type { ApplianceStatus, BootStageStatus, ConfinementStatus } from '../lib/contracts/status.js';
import { CL_ERR_BOOTING, CL_ERR_PORT_IN_USE, CL_ERR_PROCESS_CONTROL } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import { collectStartupGarbage } from '../lib/memory.js';
import { distDir, migrationsDir } from '../lib/package-root.js';
import { dataPaths } from '../lib/paths.js';
import { readRoutingSnapshot, writeRoutingSnapshot } from '../lib/routing-snapshot.js';
import { startBackups } from './backups.js';
import { bootGraph, type BootResult } from './boot.js';
import { childEnvironment, effectiveUrls, embeddedUrl } from './child-env.js';
import { APP_REDIS_USER, releaseEnvironment } from './confinement.js';
import { claimControlSocket, type ControlRoute } from './control-socket.js';
import { logsRoute, processRoutes } from './control-routes.js';
import { LogRing } from './log-ring.js';
import { errorForLog, forwardLine, routeConsoleTo } from './log-forwarding.js';
import { readMigrations, runMigrations } from './migrations.js';
import { startJobDrain, type JobDrain } from './job-drain.js';
import { startMonitor } from './monitor.js';
import { reapOrphans } from './orphans.js';
import { assertDataSurvives } from './platform.js';
import { assertPortsFree } from './ports.js';
import { bindControlSocket, portClaims, prepare } from './preflight.js';
import { nodeForRelease, ProcessControl } from './process-control.js';
import { bootNodes, orderGraph, type GraphContext } from './process-graph.js';
import { ProcessManager } from './process-manager.js';
import { followProxy, PublicListener } from './public-listener.js';
import { bootRelease, newReleaseId } from './release-env.js';
import { firstStart, recordRun } from './run-log.js';
import { readWorkerSources, workerSourceFor } from './worker-sources.js';
import { collectStatus } from './status.js';

export interface UpOptions {
  configFile?: string | undefined;
}

/** Runs until stopped by a signal; resolves with the exit code. Throws (after cleaning up) when the boot fails. */
export async function runUp(options: UpOptions = {}): Promise<number> {
  const startedAt = new Date();
  // performance.now() counts from this process's start: what came before is Node's and the imports'.
  const t0 = performance.now();
  const config = loadConfig({ file: options.configFile });
  // As root, the supervisor keeps no supplementary group: what it starts as another user (pm2
  // switches only the user and group ids) inherits none, root's group included.
  if (process.getuid?.() === 0) process.setgroups?.([]);
  const out = pino.destination({ fd: 1, sync: false });
  // What goes to stdout is also kept, bounded, for `changelens logs`.
  const logRing = new LogRing();
  const log = createLogger('supervisor', { level: config.logLevel, destination: logRing.tee(out, 'supervisor') });
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
  const routes: ControlRoute[] = [{ method: 'GET', path: /^\/status$/, handler: () => statusNow() }, logsRoute(logRing)];
  const server = await bindControlSocket(paths, routes);
  // A `logs -f` follower never ends its request by itself: ended here, or close would wait for it.
  const releaseLock = (): Promise<void> => new Promise((resolve) => {
    logRing.close();
    server.close(() => resolve());
    server.closeIdleConnections();
  });

  let prepared: Awaited<ReturnType<typeof prepare>>;
  let connecting: Promise<ProcessManager>;
  try {
    // pm2 starts (in this process) while the data dir is prepared: neither needs the other.
    routeConsoleTo(log.child({ component: 'pm2' }));
    connecting = ProcessManager.connect(paths.pm2Home, {
      releasePorts: { 'api-blue': config.apiBluePort, 'api-green': config.apiGreenPort, 'worker-blue': config.workerBluePort, 'worker-green': config.workerGreenPort },
      refused: (name, what) => log.warn({ process: name, refused: what }, `${name} asked the supervisor for a listening socket other than its own port: refused`),
    });
    connecting.catch(() => {}); // awaited below; a failure of prepare() is reported first
    prepared = await prepare(config, paths, embedded, log, mount);
  } catch (err) {
    await releaseLock();
    throw err;
  }
  const { serviceUser, bin, secrets, firstBoot, confined } = prepared;
  // The proxy, as the service user, asks the supervisor through its socket.
  if (serviceUser) chownSync(paths.controlSocket, serviceUser.uid, serviceUser.gid);

  const snapshot = readRoutingSnapshot(paths.routing) ?? writeRoutingSnapshot(paths.routing, 'blue');
  const activeColor = snapshot.activeColor;
  const urls = effectiveUrls(config, secrets);
  const childEnv = childEnvironment(config, urls);
  const releaseUser = 'user' in confined ? confined.user : null;
  const confinement: ConfinementStatus = {
    user: releaseUser,
    ...('off' in confined ? { userOff: confined.off } : {}),
    database: `role ${APP_ROLE} (schema ${APP_SCHEMA})`,
    redis: embedded.redis ? `ACL user ${APP_REDIS_USER} (no admin or dangerous commands)` : 'shared: external Redis (REDIS_URL) is used as given',
  };
  // What each colour's release gets; the release that boots carries its settings (and regressions)
  // from birth, the idle colour gets a release's own when it is started for one.
  const releaseEnv: GraphContext['releaseEnv'] = {
    blue: { ...releaseEnvironment(config, urls.app, 'blue', releaseUser), [envNameOf('appControlToken')]: appControlToken(secrets.adminToken, 'blue') },
    green: { ...releaseEnvironment(config, urls.app, 'green', releaseUser), [envNameOf('appControlToken')]: appControlToken(secrets.adminToken, 'green') },
  };
  // The active release (as the last promotion snapshotted it) is what the active colour runs.
  const secretsKey = releaseSecretsKey(secrets.backupKey);
  const activeRelease = bootRelease(paths, snapshot, secretsKey);
  const activeSettings: Record<string, string> = { ...activeRelease.env, [envNameOf('releaseId')]: newReleaseId() };
  if (config.regression !== undefined) activeSettings[envNameOf('regression')] = config.regression;
  if (config.workerRegression !== undefined) activeSettings[envNameOf('workerRegression')] = config.workerRegression;
  const proxyEnv: Record<string, string> = { [envNameOf('adminToken')]: secrets.adminToken, [envNameOf('releaseSecretsKey')]: secretsKey.toString('base64url') };
  // A fleet instance (both services external): its name goes to the proxy alone, which joins the
  // fleet by it; an embedded appliance is one instance and never joins one.
  delete childEnv[envNameOf('instanceId')];
  const fleetInstance = !embedded.postgres && !embedded.redis ? instanceId(config.instanceId, paths.state) : undefined;
  if (fleetInstance !== undefined) proxyEnv[envNameOf('instanceId')] = fleetInstance;
  // The rollout's hooks fire from the proxy: only it gets them.
  if (config.hookUrls !== undefined) proxyEnv[envNameOf('hookUrls')] = config.hookUrls;
  if (config.hookCommand !== undefined) proxyEnv[envNameOf('hookCommand')] = config.hookCommand;
  // So do its chat notifications and its gate webhook (their URLs are keys).
  for (const key of ['notify', 'gateUrl'] as const) if (config[key] !== undefined) proxyEnv[envNameOf(key)] = config[key]!;
  // The declared processes; a colour started later takes its release from here (ProcessControl).
  const declared = processGraph({ config, paths, activeColor, bin, serviceUser: serviceUser?.name, childEnv, proxyEnv, releaseEnv, distDir, embedded });
  // What boots: the active colour with its release (every colour's API and worker start through
  // nodeForRelease); its worker from the code it ran before, when its release brings none.
  const workerSources = readWorkerSources(paths.workers);
  const activeWorker = workerSourceFor(activeRelease.artifact, workerSources[activeColor]);
  const graph = declared.map((node) => {
    if (node.name === `api-${activeColor}`) return nodeForRelease(node, activeSettings, activeRelease.artifact);
    if (node.name === `worker-${activeColor}`) return nodeForRelease(node, activeSettings, activeWorker === 'builtin' ? undefined : activeWorker);
    return node;
  });
  const nodes = bootNodes(graph);
  const migrations = readMigrations(migrationsDir);

  const pm = await connecting;
  const sinks = new Map<string, ReturnType<LogRing['tee']>>();
  pm.onLine((line) => {
    let sink = sinks.get(line.name);
    if (!sink) sinks.set(line.name, (sink = logRing.tee(out, line.name)));
    forwardLine(sink, line);
  });
  // The public port is this process's: it outlives a proxy crash (opened when the proxy first accepts).
  const publicPort = new PublicListener({ host: config.host, port: config.port, log });
  // The proxy starts while what it serves is still starting: the port stays closed (clients are
  // refused, as before the proxy existed) until everything the proxy needs is ready.
  const proxyNeeds = new Set(nodes.find((n) => n.name === 'proxy')?.needs ?? []);
  let proxyNeedsReady: () => void = () => {};
  publicPort.holdUntil(proxyNeeds.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (proxyNeedsReady = resolve)));
  const onProxyNeedReady = (name: string): void => {
    if (proxyNeeds.delete(name) && proxyNeeds.size === 0) proxyNeedsReady();
  };
  // A port taken between the preflight and the proxy's start fails the boot, naming it.
  let portFailed: (err: Error) => void = () => {};
  const portFailure = new Promise<never>((_, reject) => (portFailed = reject));
  const portLost = new AbortController();
  portFailure.catch(() => {});
  const unfollowProxy = followProxy(publicPort, log, (err) => {
    log.error({ err: err.message, port: config.port }, 'could not open the public port');
    portLost.abort();
    portFailed(new CL_ERR_PORT_IN_USE(`port ${config.port} on ${config.host} (PORT, for the proxy) is unusable: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  });

  const boot = { startedAt, firstBoot, durationMs: null as number | null, readyMs: {} as Record<string, number>, stages: [] as BootStageStatus[] };
  const readyTimeoutMs = config.readyTimeoutMs;
  const interrupt = new AbortController();
  const control = new ProcessControl(orderGraph(declared), { pm, log, urls, readyTimeoutMs }, () => readRoutingSnapshot(paths.routing)?.activeColor ?? activeColor, interrupt.signal,
    { path: paths.workers, sources: { ...workerSources, [activeColor]: activeWorker } });
  let monitoring: ReturnType<typeof startMonitor> = null;
  let drain: JobDrain | null = null;
  let backups: ReturnType<typeof startBackups> | null = null;
  const workerOf = (color: Color): string | null => {
    const source = control.workerSource(color);
    return source === undefined ? null : source === 'builtin' ? 'builtin' : source.script;
  };
  statusNow = async () => ({ ...await collectStatus({ pm, graph, paths, urls, embedded, fallbackColor: activeColor, boot, phase: () => phase, workerOf }), monitor: monitoring?.monitor.status() ?? null, backups: backups?.summary() ?? null, publicPort: publicPort.stats(), confinement });
  // Starting or stopping a colour only makes sense between the end of the boot and the stop.
  // While booting the refusal is its own code: the caller may try again (a fleet instance's proxy
  // follows a deployment as soon as it has read it, which can be before the boot's last probe).
  const whenReady = <T>(fn: () => Promise<T>): Promise<T> =>
    phase === 'ready' ? fn() : Promise.reject(phase === 'booting' ? new CL_ERR_BOOTING() : new CL_ERR_PROCESS_CONTROL(`the appliance is ${phase}; try again when it is ready`));
  routes.push(...processRoutes({ control, pm, whenReady, monitorStatus: () => monitoring?.monitor.status() ?? null, config, paths, releaseSecretsKey: secretsKey }));
  pm.onEvent((e) => {
    if (e.name === 'proxy' && e.event === 'restart overlimit') publicPort.giveUp();
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
    await drain?.close();
    await backups?.close();
    // No new connection once stopping; the proxy then drains those it has.
    unfollowProxy();
    publicPort.close();
    await control.stopAll(log);
    await releaseLock();
    out.flushSync();
    return code;
  };

  let booting: Promise<BootResult> | undefined;
  try {
    // Embedded Postgres is ready before our database exists (migrations create it): probe "postgres".
    const probeUrls = { ...urls, database: embedded.postgres ? embeddedUrl(secrets.pgPassword, config.pgPort, 'postgres') : urls.database };
    const graphAt = performance.now();
    // Each stage as it happens, from the process's start (the supervisor's own start-up, its
    // preparation, then each node): `status` shows a boot in progress, and a failed one logs them.
    const at = (ms: number): number => Math.round(graphAt + ms);
    boot.stages.push({ name: 'supervisor start', startedMs: 0, readyMs: Math.round(t0) }, { name: 'prepare', startedMs: Math.round(t0), readyMs: Math.round(graphAt) });
    const onStarted = (name: string, ms: number): void => { boot.stages.push({ name, startedMs: at(ms), readyMs: null }); };
    const onReady = (name: string, ms: number): void => {
      const stage = boot.stages.find((s) => s.name === name);
      if (stage) stage.readyMs = at(ms);
      onProxyNeedReady(name);
    };
    booting = bootGraph(nodes, {
      pm, log, urls: probeUrls, readyTimeoutMs, signal: AbortSignal.any([interrupt.signal, portLost.signal]), onStarted, onReady,
      runTask: (node) => runMigrations(node, log, embedded.postgres, urls, secrets, config, migrations),
    }, { push: (name: string) => control.noteStarted(name) });
    booting.catch(() => {}); // observed below, whichever fails first
    const result = await Promise.race([portFailure, booting]);
    boot.readyMs = result.readyMs;
  } catch (err) {
    phase = 'failed';
    // A port failure wins the race while other nodes may still be starting: the boot (aborted by
    // it) settles first, so everything it started is known to what stops it.
    await booting?.catch(() => {});
    if (interrupt.signal.aborted) {
      log.info('boot interrupted by a signal; stopping what started');
      return finish(0);
    }
    log.error({ err: errorForLog(err), stages: boot.stages }, 'boot failed; stopping what started');
    await finish(1);
    throw err;
  }

  // From the process's start, as the stages: the supervisor's own start-up is part of the boot.
  boot.durationMs = Math.round(performance.now());
  phase = 'ready';
  recordRun(paths.runLog, 'start');
  log.info({ bootMs: boot.durationMs, firstBoot, activeColor, stages: boot.stages, url: `http://${config.host}:${config.port}` }, 'appliance ready');
  collectStartupGarbage();
  monitoring = startMonitor(config, {
    pm, log, urls, dataDir: paths.root, graph: orderGraph(graph), isRunning: (name) => control.isRunning(name),
    activeColor: () => readRoutingSnapshot(paths.routing)?.activeColor ?? activeColor,
  });
  drain = startJobDrain({
    redisUrl: urls.redis, log, isRunning: (name) => control.isRunning(name), changing: () => control.changing(), claimIdleMs: config.jobClaimIdleMs,
    // A fleet: another instance's worker of the stopped colour may be reading (it polls every second).
    ...(fleetInstance !== undefined ? { sharedLiveWithinMs: Math.max(5_000, config.jobClaimIdleMs) } : {}),
    activeColor: () => readRoutingSnapshot(paths.routing)?.activeColor ?? activeColor,
  });
  backups = startBackups({
    config, paths, pm, log, urls,
    pgBinDir: bin.pgToolsDir,
    redisServer: embedded.redis ? bin.redisServer : null,
    ...(serviceUser ? { serviceUser } : {}),
    graph: orderGraph(graph), isRunning: (name) => control.isRunning(name),
    probe: { pm, log, urls, readyTimeoutMs },
    since: firstStart(paths.runLog) ?? startedAt,
    backupKey: secrets.backupKey,
    ...(fleetInstance !== undefined ? { fleetInstance } : {}),
  });
  routes.push(...backups.routes);

  await stopSignal;
  return finish(0);
}

