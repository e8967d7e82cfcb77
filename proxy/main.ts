// Composition root of the proxy process: the only public port. It routes, measures every request
// per colour, and runs the rollout controller and the admin API in the same process, so a failing
// verdict changes the routing without a network hop.
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { loadConfig } from '../lib/config.js';
import { HANDOFF_CONNECTION, PROXY_DETACHED, type ProxyHandoffMessage } from '../lib/contracts/handoff.js';
import { PREVIEW_COOKIE, PREVIEW_HEADER, previewKey, signPreview, verifyPreview, type PreviewPurpose } from '../lib/contracts/preview.js';
import { BUILTIN_ARTIFACT } from '../lib/contracts/releases.js';
import { createPgPool } from '../lib/db.js';
import { closeGracefully } from '../lib/http-server.js';
import { createLogger } from '../lib/logger.js';
import { collectStartupGarbage } from '../lib/memory.js';
import { dataPaths } from '../lib/paths.js';
import { readRoutingSnapshot } from '../lib/routing-snapshot.js';
import { onStopSignal } from '../lib/shutdown.js';
import { initTracing, shutdownTracing } from '../lib/tracing.js';
import { createProxyMetrics, SlicedWindow } from '../monitoring/index.js';
import { analysisLoadThrough, PgRolloutStore, RolloutController, systemClock, type ControllerOptions } from '../rollout/index.js';
import { FLEET_JUDGE_DELAY_MS, FleetNode } from '../fleet/index.js';
import { packageVersion } from '../lib/package-root.js';
import { AuthFailures, bearerMatches, registerAdminApi, type LiveSecond } from './admin/index.js';
import { CL_ERR_UNAUTHORIZED } from '../lib/errors.js';
import { readJobOutcomes } from './job-outcomes.js';
import { createMirror } from './mirror.js';
import { readCookie } from './router.js';
import { parseNotifyTargets, type NotifyTarget } from '../lib/contracts/notify-targets.js';
import { buildProxyServer } from './server.js';
import { backupLink, healthDetails, monitorSummary, processSummary, supervisorLink, workerCodeDirs } from './supervisor-link.js';

const config = loadConfig();
const log = createLogger('proxy', { level: config.logLevel });
await initTracing('proxy', config.otlpEndpoint);
const paths = dataPaths(config.dataDir);
if (config.adminToken === undefined || config.databaseUrl === undefined) throw new Error('the proxy needs CHANGELENS_ADMIN_TOKEN and DATABASE_URL (the supervisor sets both)');
const adminToken = config.adminToken;

// The routing snapshot lets a restarted proxy route before Postgres answers: to the active colour only.
const snapshot = readRoutingSnapshot(paths.routing);
const activeColor = snapshot?.activeColor ?? 'blue';
const upstreams = { blue: `http://127.0.0.1:${config.apiBluePort}`, green: `http://127.0.0.1:${config.apiGreenPort}` };
const pool = createPgPool(config.databaseUrl, { max: 4, applicationName: 'changelens-proxy' });
// A fleet instance (the supervisor names it only in external mode): it drives deployments while it
// holds the controller lease, and every write of the rollout is fenced by the lease's epoch.
const fleetId = config.instanceId !== undefined && config.redisUrl !== undefined ? config.instanceId : null;
let fleet: FleetNode | null = null;
const store = new PgRolloutStore(pool);
// Wrong tokens, wherever one is checked (the admin API, /healthz?all=1), counted together.
const authFailures = new AuthFailures(store);
// Pins need a credential (lib/contracts/preview.ts): the admin token, or one signed with this key.
const previews = previewKey(adminToken);
let analysis = { credential: '', until: 0 };
/** The analysis load's own credential, signed for a day and renewed an hour before it ends. */
const analysisCredential = (): string => {
  if (Date.now() > analysis.until - 3_600_000) analysis = { credential: signPreview(previews, 'analysis', Date.now() + 86_400_000), until: Date.now() + 86_400_000 };
  return analysis.credential;
};
/** A signed credential (header or cookie), or the admin token in the header only (a cookie goes to the app). */
const previewAccess = (req: IncomingMessage): PreviewPurpose | null => {
  const header = req.headers[PREVIEW_HEADER];
  const cookie = req.headers.cookie ? readCookie(req.headers.cookie, PREVIEW_COOKIE) : undefined;
  const given = typeof header === 'string' ? header : cookie;
  if (given === undefined) return null;
  if (given.startsWith('p1.')) return verifyPreview(previews, given, Date.now());
  if (given === header && bearerMatches(`Bearer ${given}`, adminToken)) return 'preview';
  // A wrong token here counts as one anywhere else (and is audited the same way).
  authFailures.failed(req, '(a pinned request)', log);
  return null;
};
// The judge's window: this proxy's requests, or in a fleet every proxy's (fleet/slice-exchange.ts).
const window = new SlicedWindow();
// Seconds the rings no longer hold let go of their histograms (70 KB each): idle after traffic holds none.
setInterval(() => {
  window.sweep(Date.now());
  controller.jobs.sweep(Date.now());
}, 30_000).unref();
const metrics = createProxyMetrics();
// Copies to a warming (or analysed) candidate; its answers go to counters and, for an analysis, the judge.
const mirror = createMirror({
  upstreams, maxPerSecond: config.mirrorMaxRps, log,
  onAnswered: (color, purpose, latencyMs, statusCode, rolloutId) => {
    metrics.countMirrored(color, purpose, statusCode);
    controller.recordCopy(color, purpose, latencyMs, statusCode, rolloutId);
  },
  onSkipped: (color, reason) => metrics.countMirrorSkipped(color, reason),
});
const controller = new RolloutController({
  store, window, log, gauges: metrics, activeColor,
  supervisor: supervisorLink(paths.controlSocket, paths.root, upstreams, config.readyTimeoutMs),
  routingPath: paths.routing,
  releasesDir: paths.releases,
  releasesKeep: config.releasesKeep,
  keepDirs: () => workerCodeDirs(paths.workers, paths.releases),
  hooks: { urls: config.hookUrls?.split(',').map((u) => u.trim()) ?? [], command: config.hookCommand, timeoutMs: config.hookTimeoutMs },
  initialRelease: snapshot?.release ?? { version: 'initial', artifact: BUILTIN_ARTIFACT, env: {} },
  // A plan's analysis load goes through this very proxy, so it is routed, measured and judged as any request.
  analysisLoad: analysisLoadThrough(`http://${selfHost(config.host)}:${config.port}`, systemClock, log, () => analysisCredential()),
  mirror,
  readyTimeoutMs: config.readyTimeoutMs,
  ...(config.gateUrl ? { gate: { url: config.gateUrl, timeoutMs: config.hookTimeoutMs } } : {}),
  ...(config.notify ? { notify: { targets: parseNotifyTargets(config.notify) as NotifyTarget[], timeoutMs: config.hookTimeoutMs, publicUrl: config.publicUrl } } : {}),
  ...(fleetId ? {
    fleet: {
      link: { everyoneReady: (d, ms, live) => fleet!.everyoneReady(d, ms, live), servingEverywhere: (d) => fleet!.servingEverywhere(d), stableNow: (d) => fleet!.stableNow(d) },
      send: (action: string, args: unknown) => fleet!.commands.send(action, args),
      changed: () => void fleet?.registry.beat(),
      trip: (t) => void fleet!.commands.send('trip', { ...t, instance: fleetId }).catch((err: Error) => log.error({ err: err.message, trip: t }, 'could not tell the controller of a fast trip here; this instance routes to the stable colour only')),
      unjudged: () => (fleet ? fleet.unjudged() : 'joining the fleet'),
      judgeDelayMs: FLEET_JUDGE_DELAY_MS,
      // Fenced by the epoch it took: a reconciler of an earlier epoch never writes again, even after this instance retakes the lease.
      storeFor: (held) => new PgRolloutStore(pool, () => {
        const now = fleet?.lease.held();
        return now && now.epoch === held.epoch ? now : null;
      }),
    },
    measure: { record: (c, ms, e, at) => fleet!.slices.record(c, ms, e, at), recordMetric: (c, n, v, at) => fleet!.slices.recordMetric(c, n, v, at) },
  } satisfies Partial<ControllerOptions> : {}),
});
if (fleetId) {
  fleet = new FleetNode({
    pool, redisUrl: config.redisUrl!, id: fleetId, version: packageVersion, address: config.instanceUrl ?? null, adminToken,
    leaseMs: config.fleetLeaseMs, graceMs: config.fleetGraceMs, fleetWindow: window, log,
    state: () => {
      const t = controller.routingTable();
      return {
        colours: { blue: controller.releaseServedBy('blue'), green: controller.releaseServedBy('green') },
        routing: { stable: t.stable, candidate: t.candidate ?? null, candidateWeight: t.candidateWeight, rolloutId: t.rolloutId ?? null },
        following: controller.following(),
        degraded: controller.degraded(),
      };
    },
    onLease: (held) => {
      if (held) {
        fleet!.serveCommands((action, args) => controller.act(action as Parameters<typeof controller.act>[0], args, true));
        void controller.lead(held);
      } else {
        fleet!.serveCommands(null);
        controller.follow();
      }
      void fleet!.registry.beat();
    },
    onStable: (id, sentAtMs) => controller.stableNow(id, sentAtMs),
  });
}

// The workers' job outcomes, judged per colour like requests (a canary's worker is part of its release).
const outcomes = config.redisUrl ? readJobOutcomes(config.redisUrl, log, (o) => {
  controller.recordJob(o);
  metrics.observeJob(o.color, o.outcome, o.latencyMs);
}, (color, jobs) => controller.noteJobBacklog(color, jobs)) : null;

let hold: { reason: string; retryAfterSeconds: number } | null = null;
const backupsLink = backupLink(paths.controlSocket, paths.root);
/** The rollout state is loaded (controller.init): until then only the stable colour serves. */
let initialized = false;
/**
 * /readyz waits for the first attempt to load it (so a boot that says ready routes by it), not for
 * success: a deployment whose state cannot be taken over must not keep the appliance, and the admin
 * API that would abort it, from booting. The stable colour serves meanwhile; the retries are logged.
 */
let firstLoadSettled = false;
const firstLoadDone = (): void => {
  if (firstLoadSettled) return;
  firstLoadSettled = true;
  collectStartupGarbage();
};
const app = await buildProxyServer({
  log,
  unavailable: () => hold,
  upstreams,
  routingTable: controller.routingTable,
  accessLog: config.accessLog,
  onMeasured: (color, latencyMs, statusCode) => {
    controller.record(color, latencyMs, statusCode);
    metrics.observeRequest(color, controller.releaseServedBy(color), latencyMs, statusCode);
  },
  onMetric: (color, name, value) => controller.recordMetric(color, name, value),
  onRetriedOnStable: (from) => metrics.countRetryOnStable(from),
  // CHANGELENS_JOB_SPLIT=weight: what the stable API enqueues goes to the candidate's worker by the weight too.
  ...(config.jobSplit === 'weight' ? { jobColor: (served: 'blue' | 'green') => {
    const t = controller.routingTable();
    return t.candidate && served === t.stable && t.candidateWeight > 0 && Math.random() < t.candidateWeight ? t.candidate : undefined;
  } } : {}),
  onHeld: (color) => metrics.countHeld(color),
  previewAccess,
  onPreview: (color, statusCode) => metrics.countPreview(color, statusCode),
  mirror,
  notReady: () => (firstLoadSettled ? null : 'rollout state not loaded from Postgres yet'),
  healthDetails: () => healthDetails(paths.controlSocket, paths.root),
  detailsRefusal: (req) => {
    if (bearerMatches(req.headers.authorization, adminToken)) return null;
    return authFailures.failed(req, '/healthz', log) ?? new CL_ERR_UNAUTHORIZED();
  },
});
await registerAdminApi(app, {
  token: config.adminToken, controller, store, config, ready: () => initialized, releasesDir: paths.releases,
  backups: backupsLink,
  live: (seconds) => liveSeconds(window, controller.jobs, seconds),
  holdTraffic: (h) => { hold = h; },
  upstreams,
  workerUpstreams: { blue: `http://127.0.0.1:${config.workerBluePort}`, green: `http://127.0.0.1:${config.workerGreenPort}` },
  authFailures,
  previews,
  ...(config.releaseSecretsKey ? { releaseSecretsKey: Buffer.from(config.releaseSecretsKey, 'base64url') } : {}),
  healthDetails: () => healthDetails(paths.controlSocket, paths.root),
  ...(fleetId ? { fleet: async () => ({ instance: fleetId, controller: controller.isController, lease: fleet!.lease.holder(), instances: await fleet!.instances() }) } : {}),
  metrics: async () => {
    // The supervisor's monitor joins the exposition at scrape time (it runs in another process).
    const [monitor, backups, processes] = await Promise.all([monitorSummary(paths.controlSocket, paths.root), backupsLink.summary(), processSummary(paths.controlSocket, paths.root)]);
    if (backups) metrics.setBackups(backups);
    if (processes) metrics.setProcesses(processes);
    if (monitor) metrics.setMonitor({ firings: monitor.firings, rules: monitor.ruleNames, holding: monitor.breaching.map((b) => b.rule) });
    return metrics.render();
  },
});
const handedOff = config.connectionHandoff === '1' && process.send !== undefined;
let stopping = false;
if (handedOff) {
  // The supervisor holds the public port (it outlives this process) and hands each connection
  // over. The server still listens, on a private loopback port, so node's header, request and
  // idle timeouts run for those connections as for its own.
  await app.listen({ host: '127.0.0.1', port: 0, exclusive: true });
  process.on('message', (message: unknown, handle: unknown) => {
    if (message === HANDOFF_CONNECTION && handle instanceof Socket) app.server.emit('connection', handle);
  });
  const accepting: ProxyHandoffMessage = { changelens: 'proxy-accepting' };
  process.send!(accepting);
  // Said again every few seconds: whatever made the supervisor let go of a live proxy, it takes it
  // back within that (the same proxy again is a no-op there).
  const heartbeat = setInterval(() => { if (process.connected && !stopping) process.send!(accepting); }, 2_000);
  heartbeat.unref();
  log.info({ port: config.port, activeColor }, 'proxy accepting the public connections from the supervisor');
} else {
  await app.listen({ port: config.port, host: config.host });
  log.info({ port: config.port, activeColor }, 'proxy listening');
}

// Rollout state: read from Postgres, retried until it answers; meanwhile only the stable colour serves.
void (async () => {
  for (let attempt = 1; ; attempt++) {
    try {
      await controller.init();
      // A fleet instance follows from here, and drives once it takes the lease.
      fleet?.start();
      initialized = true;
      return;
    } catch (err) {
      log.warn({ err: (err as Error).message, attempt }, 'could not load rollout state; routing to the active colour only, retrying');
      firstLoadDone();
      await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * attempt)));
    }
  }
})().finally(firstLoadDone);

// Stop accepting, finish every request in flight, then exit: the supervisor stops the APIs after.
onStopSignal(log, async () => {
  // New connections wait at the supervisor for the next proxy, if there is one; those already on
  // their way here arrive before its answer, and are served before the server closes.
  stopping = true;
  if (handedOff && process.connected) await detachedFromSupervisor();
  controller.close();
  // The lease given up and the instance gone from the fleet at once: nobody waits out the grace.
  await fleet?.close();
  await outcomes?.close();
  // All of pm2's kill_timeout but a margin: the drain is bounded by the stop budget.
  await closeGracefully(app, Math.max(500, config.stopTimeoutMs - 3_500));
  await mirror.close();
  await pool.end().catch(() => {});
  await shutdownTracing();
}, { underPm2: config.pmId !== undefined });

/** Tells the supervisor this proxy stops and waits (a second at most) until it confirms. */
function detachedFromSupervisor(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve();
    };
    const onMessage = (message: unknown): void => {
      if (message === PROXY_DETACHED) done();
    };
    const timer = setTimeout(done, 1_000);
    process.on('message', onMessage);
    const stopping: ProxyHandoffMessage = { changelens: 'proxy-stopping' };
    process.send!(stopping);
  });
}

/** Each of the last `seconds` whole seconds, per colour, from the judge's 1 s slices (requests and jobs). */
function liveSeconds(w: SlicedWindow, jobs: SlicedWindow, seconds: number): LiveSecond[] {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const out: LiveSecond[] = [];
  for (let t = now - seconds * 1000; t < now; t += 1000) {
    const of = (color: 'blue' | 'green') => {
      const s = w.window(color, t + 1000, 1000);
      return { count: s.count, p50Ms: Math.round(s.p50Ms * 100) / 100, p99Ms: Math.round(s.p99Ms * 100) / 100, errorRate: s.errorRate };
    };
    const jobsOf = (color: 'blue' | 'green') => {
      const s = jobs.window(color, t + 1000, 1000);
      return { count: s.count, p99Ms: Math.round(s.p99Ms * 100) / 100, errorRate: s.errorRate };
    };
    out.push({ t, blue: of('blue'), green: of('green'), jobs: { blue: jobsOf('blue'), green: jobsOf('green') } });
  }
  return out;
}

/** Where this process can reach its own listener: loopback when it listens on every address. */
function selfHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
