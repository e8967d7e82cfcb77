// The admin API under /_changelens/ (bearer token, compared in constant time): deployments and
// their actions, releases, the audit log, exports and the Prometheus exposition. Every body is
// validated; an error names the field. The CLI (cli/) is a thin client of these routes.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { createHttpServer } from '../lib/http-server.js';
import { parseSteps, type Config } from '../lib/config.js';
import { validateReleaseEnv } from '../lib/contracts/releases.js';
import { parseMetricRules } from '../lib/contracts/metric-rules.js';
import { CL_ERR_DEPENDENCY_FAILED, CL_ERR_DEPLOYMENT_RUNNING, CL_ERR_INVALID_REQUEST, CL_ERR_NOT_FOUND, CL_ERR_UNAUTHORIZED } from '../lib/errors.js';
import type { DeployRequest, RolloutController } from '../rollout/controller.js';
import type { Plan, RolloutStore, Strategy } from '../rollout/store.js';
import { receiveArtifact } from '../rollout/upload.js';
import type { BackupLink } from './supervisor-link.js';
import { Readable } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { dashboardPage, loginPage } from './dashboard.js';
import { readCookie } from './router.js';

export interface AdminApiOptions {
  token: string;
  controller: RolloutController;
  store: RolloutStore;
  config: Config;
  /** The Prometheus exposition (monitoring/metrics.ts). */
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** <data>/releases: where uploaded artifacts go. */
  releasesDir: string;
  /** Rollout state loaded from Postgres; until then the API answers 503. */
  ready: () => boolean;
  backups: BackupLink;
  /** The last `seconds` whole seconds of each colour's requests (the judge's own slices), for the dashboard. */
  live: (seconds: number) => LiveSecond[];
  /** Holds every proxied request (503 + Retry-After) while set; cleared with null. */
  holdTraffic: (hold: { reason: string; retryAfterSeconds: number } | null) => void;
}

export const ADMIN_PREFIX = '/_changelens';
/** The dashboard's session: the admin token itself, HttpOnly, sent only to /_changelens/. */
const SESSION_COOKIE = 'changelens-admin';
const SESSION_SECONDS = 12 * 3600;
/** The two files of uPlot the dashboard loads (nothing else is served from node_modules). */
/** uPlot's dist/, found by module resolution (so the dependency checks see it). */
const UPLOT_DIST = dirname(createRequire(import.meta.url).resolve('uplot'));
const ASSETS: Record<string, string> = { 'uPlot.iife.min.js': 'application/javascript; charset=utf-8', 'uPlot.min.css': 'text/css; charset=utf-8' };

export interface LiveSecond {
  /** The second's start, ms since the epoch. */
  t: number;
  blue: { count: number; p50Ms: number; p99Ms: number; errorRate: number };
  green: { count: number; p50Ms: number; p99Ms: number; errorRate: number };
}

type AdminHost = Awaited<ReturnType<typeof createHttpServer>>;

const DEPLOY_FIELDS = {
  version: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
  strategy: { type: 'string', enum: ['canary', 'bluegreen', 'direct'] },
  steps: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 100 }, minItems: 1, maxItems: 20 },
  stepSeconds: { type: 'integer', minimum: 1, maximum: 86_400 },
  windowSeconds: { type: 'integer', minimum: 1, maximum: 60 },
  env: { type: 'object', additionalProperties: { type: 'string' } },
  artifact: { type: 'string', minLength: 1, maxLength: 4096 },
  p99Ratio: { type: 'number', minimum: 1, maximum: 1000 },
  maxErrorRate: { type: 'number', minimum: 0, maximum: 1 },
  maxP95Ms: { type: 'number', exclusiveMinimum: 0, maximum: 600_000 },
  maxP99Ms: { type: 'number', exclusiveMinimum: 0, maximum: 600_000 },
  minSamples: { type: 'integer', minimum: 1, maximum: 1_000_000 },
  failuresToRollback: { type: 'integer', minimum: 1, maximum: 100 },
  keepWarmSeconds: { type: 'integer', minimum: 0, maximum: 604_800 },
  inspectSeconds: { type: 'integer', minimum: 0, maximum: 604_800 },
  previewSeconds: { type: 'integer', minimum: 0, maximum: 86_400 },
  tripConsecutive5xx: { type: 'integer', minimum: 0, maximum: 10_000 },
  metricRules: { type: 'string', maxLength: 1000 },
  sequential: { type: 'boolean' },
} as const;

type DeployBody = { version: string; strategy?: Strategy; steps?: number[]; env?: Record<string, string>; artifact?: string; metricRules?: string; sequential?: boolean } & Partial<Record<Exclude<keyof typeof DEPLOY_FIELDS, 'version' | 'strategy' | 'steps' | 'env' | 'artifact' | 'metricRules' | 'sequential'>, number>>;

function reasonOf(body: unknown): string | undefined {
  if (body === undefined || body === null || body === '') return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) throw new CL_ERR_INVALID_REQUEST('body: expected a JSON object like {"reason": "…"} or nothing');
  const unknown = Object.keys(body).filter((k) => k !== 'reason');
  if (unknown.length > 0) throw new CL_ERR_INVALID_REQUEST(`body/${unknown[0]}: unknown field (known: reason)`);
  const reason = (body as { reason?: unknown }).reason;
  if (reason === undefined) return undefined;
  if (typeof reason !== 'string' || reason.length < 1 || reason.length > 500) throw new CL_ERR_INVALID_REQUEST('body/reason: expected a string of 1-500 characters');
  return reason;
}

export async function registerAdminApi(app: AdminHost, o: AdminApiOptions): Promise<void> {
  const expected = digest(o.token);
  await app.register(async (admin) => {
    admin.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?')[0]!;
      if (path === `${ADMIN_PREFIX}/login`) return;
      const header = req.headers.authorization;
      const bearer = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : null;
      const cookie = bearer === null && req.headers.cookie ? readCookie(req.headers.cookie, SESSION_COOKIE) : undefined;
      // Digests have one length, so the comparison takes the same time whatever was sent.
      if (!timingSafeEqual(digest(bearer ?? cookie ?? ''), expected)) {
        if (req.method === 'GET' && (path === `${ADMIN_PREFIX}/` || path === ADMIN_PREFIX)) {
          return reply.code(401).type('text/html; charset=utf-8').send(loginPage(cookie ? 'That token is not valid (any more).' : 'Sign in with the admin token.'));
        }
        throw new CL_ERR_UNAUTHORIZED();
      }
      // A session cookie rides along on any request the browser makes: a change must also carry a
      // header that only our page's own script sends (a cross-site form cannot).
      if (bearer === null && req.method !== 'GET' && req.method !== 'HEAD' && req.headers['x-changelens-csrf'] !== '1') {
        throw new CL_ERR_INVALID_REQUEST('header x-changelens-csrf: expected 1 on changes made with the dashboard\'s session (or send Authorization: Bearer)');
      }
      if (!o.ready() && req.url.startsWith(`${ADMIN_PREFIX}/api/`)) throw new CL_ERR_DEPENDENCY_FAILED('rollout state', 'Postgres has not answered the proxy yet', '');
    });

    // A form post, so the token never sits in a URL (history, referrers, logs).
    admin.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    admin.post<{ Body: { token?: unknown } | undefined }>('/login', async (req, reply) => {
      const token = typeof req.body?.token === 'string' ? req.body.token : '';
      if (!timingSafeEqual(digest(token), expected)) return reply.code(401).type('text/html; charset=utf-8').send(loginPage('That token is not valid.'));
      const secure = req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
      return reply.code(303)
        .header('set-cookie', `${SESSION_COOKIE}=${encodeURIComponent(token)}; Path=${ADMIN_PREFIX}; HttpOnly; SameSite=Strict; Max-Age=${SESSION_SECONDS}${secure}`)
        .header('location', `${ADMIN_PREFIX}/`).send();
    });
    admin.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(dashboardPage()));
    admin.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => {
      const type = ASSETS[req.params.file];
      if (!type) throw new CL_ERR_NOT_FOUND(`asset ${req.params.file}`);
      return reply.type(type).header('cache-control', 'max-age=86400').send(await readFile(join(UPLOT_DIST, req.params.file)));
    });
    admin.get<{ Querystring: { seconds?: number } }>('/api/live', {
      schema: { querystring: { type: 'object', properties: { seconds: { type: 'integer', minimum: 1, maximum: 120 } } } },
    }, async (req) => ({ seconds: o.live(req.query.seconds ?? 60) }));

    admin.get('/metrics', async (_req, reply) => {
      const { contentType, body } = await o.metrics();
      return reply.type(contentType).send(body);
    });

    admin.get('/api/status', async () => {
      const s = o.controller.status();
      return { schemaVersion: 1, ...s, pointers: await o.store.pointers() };
    });

    admin.post<{ Body: DeployBody }>('/api/deployments', {
      schema: { body: { type: 'object', required: ['version'], properties: DEPLOY_FIELDS } },
    }, async (req, reply) => {
      const request = deployRequest(req.body, o.config, actorOf(req));
      if (o.config.backupBeforeDeploy === '1') {
        // Refused before the backup if another deployment runs; a failed backup refuses the deployment.
        const running = o.controller.status().deployment;
        if (running) throw new CL_ERR_DEPLOYMENT_RUNNING(running.id, running.version, running.status.phase);
        await o.backups.now(['postgres'], 'pre-deploy');
      }
      const d = await o.controller.deploy(request);
      return reply.code(202).send(d);
    });

    admin.get<{ Querystring: { limit?: number } }>('/api/deployments', {
      schema: { querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } } } },
    }, async (req) => ({ deployments: await o.store.deployments(req.query.limit ?? 50) }));

    admin.get<{ Params: { id: string } }>('/api/deployments/:id', async (req) => {
      const d = await o.store.deployment(req.params.id);
      return { ...d, verdicts: await o.store.verdicts(d.id) };
    });

    admin.get<{ Params: { id: string } }>('/api/deployments/:id/export', async (req) => exportDeployment(o.store, req.params.id));

    for (const action of ['promote', 'rollback', 'pause', 'resume', 'abort'] as const) {
      // A body is optional ({"reason": "…"}), so `curl -X POST` alone works too.
      admin.post<{ Body: unknown }>(`/api/deployment/${action}`, async (req) => {
        const actor = actorOf(req);
        const reason = reasonOf(req.body);
        switch (action) {
          case 'promote': return o.controller.promote(actor);
          case 'rollback': return o.controller.rollback(actor, reason);
          case 'pause': return o.controller.pause(actor, reason);
          case 'resume': return o.controller.resume(actor);
          case 'abort': return o.controller.abort(actor, reason);
        }
      });
    }

    admin.get('/api/releases', async () => ({ releases: await o.store.releases(), pointers: await o.store.pointers() }));

    // CI uploads a release's app (a .tar.gz, streamed) before deploying it with artifact "uploaded".
    admin.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/octet-stream'], (_req, payload, done) => done(null, payload));
    admin.put<{ Params: { version: string }; Headers: { 'x-changelens-sha256'?: string } }>('/api/releases/:version/artifact', {
      schema: {
        params: { type: 'object', properties: { version: DEPLOY_FIELDS.version } },
        headers: { type: 'object', required: ['x-changelens-sha256'], properties: { 'x-changelens-sha256': { type: 'string', pattern: '^[0-9a-fA-F]{64}$' } } },
      },
    }, async (req, reply) => {
      if (!(req.body instanceof Readable)) throw new CL_ERR_INVALID_REQUEST('body: expected the artifact as application/gzip (a .tar.gz)');
      const result = await receiveArtifact(req.body, { releasesDir: o.releasesDir, version: req.params.version, sha256: req.headers['x-changelens-sha256']!, maxBytes: o.config.artifactMaxMb * 1024 * 1024 });
      await o.store.audit({ eventType: 'upload', deploymentId: null, actor: actorOf(req), version: result.version, details: { sha256: result.sha256, bytes: result.bytes, unchanged: result.unchanged }, success: true, error: null });
      return reply.code(result.unchanged ? 200 : 201).send(result);
    });

    admin.get<{ Querystring: { since?: string; limit?: number } }>('/api/audit', {
      schema: { querystring: { type: 'object', properties: { since: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 10_000 } } } },
    }, async (req) => {
      const sinceMs = parseSince(req.query.since ?? '24h', 'querystring/since');
      return { since: new Date(sinceMs).toISOString(), events: await o.store.auditSince(sinceMs, req.query.limit ?? 1000) };
    });

    // Backups: the supervisor takes, verifies and restores them; an outside scheduler (a platform's
    // cron, when the container gets no CPU while idle) can POST /api/backups.
    admin.get('/api/backups', async () => o.backups.list());
    admin.post<{ Body: { kinds?: Array<'postgres' | 'redis'> } | undefined }>('/api/backups', {
      schema: { body: { type: ['object', 'null'], additionalProperties: false, properties: { kinds: { type: 'array', items: { type: 'string', enum: ['postgres', 'redis'] }, minItems: 1, maxItems: 2, uniqueItems: true } } } },
    }, async (req, reply) => reply.code(201).send(await o.backups.now(req.body?.kinds ?? [], 'manual')));
    admin.post<{ Params: { id: string } }>('/api/backups/:id/verify', async (req) => o.backups.verify(req.params.id));
    admin.post<{ Params: { id: string } }>('/api/backups/:id/restore', async (req) => {
      const running = o.controller.status().deployment;
      if (running) throw new CL_ERR_DEPLOYMENT_RUNNING(running.id, running.version, running.status.phase);
      // Clients are held (503 + Retry-After) from before the first write until the services answer again.
      o.holdTraffic({ reason: `restoring backup ${req.params.id}`, retryAfterSeconds: 30 });
      try {
        const result = await o.backups.restore(req.params.id);
        await o.store.audit({ eventType: 'restore', deploymentId: null, actor: actorOf(req), version: null, details: { backup: req.params.id }, success: true, error: null }).catch(() => {});
        return result;
      } finally {
        o.holdTraffic(null);
      }
    });

    // Nothing under /_changelens/ ever reaches an app colour.
    admin.all('/*', async (req) => {
      throw new CL_ERR_NOT_FOUND(`${req.method} ${req.url}`);
    });
  }, { prefix: ADMIN_PREFIX });
}

/** The deploy body with the appliance's defaults filled in, checked beyond what the schema can say. */
export function deployRequest(body: DeployBody, config: Config, actor: string): DeployRequest {
  const unknown = Object.keys(body).filter((k) => !Object.hasOwn(DEPLOY_FIELDS, k));
  if (unknown.length > 0) throw new CL_ERR_INVALID_REQUEST(`body/${unknown[0]}: unknown field (known: ${Object.keys(DEPLOY_FIELDS).join(', ')})`);
  const strategy = body.strategy ?? 'canary';
  if (body.steps !== undefined && strategy !== 'canary') throw new CL_ERR_INVALID_REQUEST(`body/steps: only a canary has steps (${strategy} switches 100 % at once)`);
  const steps = parseSteps(body.steps ?? config.canarySteps);
  if (!steps) throw new CL_ERR_INVALID_REQUEST(`body/steps: expected increasing percentages 1-100 ending at 100, got ${JSON.stringify(body.steps)}`);
  let env: Record<string, string> | undefined;
  if (body.env !== undefined) {
    const checked = validateReleaseEnv(body.env, 'body/env');
    if ('error' in checked) throw new CL_ERR_INVALID_REQUEST(checked.error);
    env = checked.env;
  }
  const metrics = parseMetricRules(body.metricRules ?? config.metricRules ?? '');
  if ('error' in metrics) throw new CL_ERR_INVALID_REQUEST(`body/metricRules: ${metrics.error}`);
  const maxP95Ms = body.maxP95Ms ?? config.maxP95Ms;
  const maxP99Ms = body.maxP99Ms ?? config.maxP99Ms;
  const plan: Plan = {
    stepSeconds: body.stepSeconds ?? config.stepSeconds,
    windowSeconds: body.windowSeconds ?? config.windowSeconds,
    rules: {
      p99Ratio: body.p99Ratio ?? config.p99Ratio,
      maxErrorRate: body.maxErrorRate ?? config.maxErrorRate,
      minSamples: body.minSamples ?? config.minSamples,
      failuresToRollback: body.failuresToRollback ?? config.failuresToRollback,
      ...(maxP95Ms !== undefined ? { maxP95Ms } : {}),
      ...(maxP99Ms !== undefined ? { maxP99Ms } : {}),
      ...(metrics.length > 0 ? { metrics } : {}),
    },
    keepWarmSeconds: body.keepWarmSeconds ?? config.keepWarmSeconds,
    inspectSeconds: body.inspectSeconds ?? config.inspectSeconds,
    previewSeconds: body.previewSeconds ?? config.previewSeconds,
    tripConsecutive5xx: body.tripConsecutive5xx ?? config.tripConsecutive5xx,
    sequential: body.sequential ?? config.sequential === '1',
  };
  if (plan.windowSeconds > plan.stepSeconds) throw new CL_ERR_INVALID_REQUEST(`body/windowSeconds: expected at most stepSeconds (${plan.stepSeconds}), got ${plan.windowSeconds}`);
  return { version: body.version, strategy, steps, env, artifact: body.artifact, plan, actor };
}

/** The seed's two exports: the deployment's result and its 5-second buckets. */
export async function exportDeployment(store: RolloutStore, id: string) {
  const d = await store.deployment(id);
  const buckets = await store.buckets(id);
  return {
    result: d.result ?? { deployment_id: d.id, status: d.status.phase, start_time: d.startedAt, end_time: null, note: 'still running: the summary is written when it ends' },
    metrics: {
      export_timestamp: new Date().toISOString(),
      deployment_id: d.id,
      bucket_duration_sec: d.plan.windowSeconds,
      total_buckets: buckets.length,
      buckets: buckets.map((b) => ({
        timestamp: new Date(b.startMs).toISOString(),
        duration_sec: b.durationSec,
        color: b.color,
        release: b.color === d.candidateColor ? d.version : d.stableVersion,
        role: b.color === d.candidateColor ? 'candidate' : 'stable',
        response_count: b.count,
        errors: b.errors,
        error_rate: b.count ? b.errors / b.count : 0,
        p50_ms: b.p50Ms,
        p95_ms: b.p95Ms,
        p99_ms: b.p99Ms,
        slo_violations: b.violations,
      })),
    },
  };
}

/** "90m", "1h", "7d" ago, or an ISO time. */
export function parseSince(value: string, field: string, now = Date.now()): number {
  const rel = /^(\d{1,6})([smhd])$/.exec(value);
  if (rel) return now - Number(rel[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const abs = Date.parse(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(abs)) return abs;
  throw new CL_ERR_INVALID_REQUEST(`${field}: expected a duration like 30m, 1h, 7d or an ISO time, got ${JSON.stringify(value)}`);
}

function actorOf(req: FastifyRequest): string {
  const actor = req.headers['x-changelens-actor'];
  return typeof actor === 'string' && /^[\w.@:-]{1,64}$/.test(actor) ? actor : 'admin';
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
