// Deployments: start one (the request checked field by field, the appliance's defaults filled
// in), list and read them with their verdicts, export them in the seed's formats, and act on the
// running one (promote, rollback, pause, resume, abort).
import type { FastifyInstance } from 'fastify';
import { parseStepsWithGates, rangeOf, type Config } from '../../lib/config.js';
import { parseAnalysisLoad } from '../../lib/contracts/analysis-load.js';
import { parseAppPaths } from '../../lib/contracts/app-paths.js';
import { parseMetricRules } from '../../lib/contracts/metric-rules.js';
import { validateReleaseEnv } from '../../lib/contracts/releases.js';
import { SEALED_PREFIX, sealSecret } from '../../lib/contracts/release-secrets.js';
import { CL_ERR_DEPLOYMENT_RUNNING, CL_ERR_INVALID_REQUEST } from '../../lib/errors.js';
import type { DeployRequest, Plan, RolloutStore, Strategy, StepExpectation } from '../../rollout/index.js';
import { actorOf, DEPLOYMENT_ID } from './auth.js';
import type { AdminApiOptions } from './options.js';

/** A JSON-schema range from the setting's own (lib/config.ts): one table says what is valid. */
function likeSetting(key: Parameters<typeof rangeOf>[0]) {
  const { min, max, integer } = rangeOf(key);
  return { type: integer ? 'integer' : 'number', minimum: min, maximum: max } as const;
}

export const VERSION_SCHEMA = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } as const;

export const DEPLOY_FIELDS = {
  version: VERSION_SCHEMA,
  strategy: { type: 'string', enum: ['canary', 'bluegreen', 'direct'] },
  // A weight, or "pause": the weight after it waits for approval.
  steps: { type: 'array', items: { anyOf: [{ type: 'integer', minimum: 1, maximum: 100 }, { type: 'string', const: 'pause' }] }, minItems: 1, maxItems: 40 },
  awaitApproval: { type: 'boolean' },
  stepSeconds: likeSetting('stepSeconds'),
  windowSeconds: likeSetting('windowSeconds'),
  env: { type: 'object', additionalProperties: { type: 'string' } },
  secrets: { type: 'object', additionalProperties: { type: 'string', maxLength: 2048 }, maxProperties: 50 },
  artifact: { type: 'string', minLength: 1, maxLength: 4096 },
  p99Ratio: likeSetting('p99Ratio'),
  p99MinDeltaMs: likeSetting('p99MinDeltaMs'),
  maxErrorRate: likeSetting('maxErrorRate'),
  maxP95Ms: likeSetting('maxP95Ms'),
  maxP99Ms: likeSetting('maxP99Ms'),
  minSamples: likeSetting('minSamples'),
  failuresToRollback: likeSetting('failuresToRollback'),
  keepWarmSeconds: likeSetting('keepWarmSeconds'),
  inspectSeconds: likeSetting('inspectSeconds'),
  previewSeconds: likeSetting('previewSeconds'),
  tripConsecutive5xx: likeSetting('tripConsecutive5xx'),
  tripConsecutiveJobFailures: likeSetting('tripConsecutiveJobFailures'),
  jobMinSamples: likeSetting('jobMinSamples'),
  progressDeadlineSeconds: likeSetting('progressDeadlineSeconds'),
  metricRules: { type: 'string', maxLength: 1000 },
  analysisLoad: { type: 'string', maxLength: 2500 },
  warmupSeconds: likeSetting('warmupSeconds'),
  warmupPaths: { type: 'string', maxLength: 2500 },
  mirror: { type: 'boolean' },
  mirrorPercent: likeSetting('mirrorPercent'),
  sequential: { type: 'boolean' },
} as const;

type DeployBody = { version: string; strategy?: Strategy; steps?: Array<number | 'pause'>; awaitApproval?: boolean; env?: Record<string, string>; secrets?: Record<string, string>; artifact?: string; metricRules?: string; analysisLoad?: string; warmupPaths?: string; mirror?: boolean; sequential?: boolean } & Partial<Record<Exclude<keyof typeof DEPLOY_FIELDS, 'version' | 'strategy' | 'steps' | 'awaitApproval' | 'env' | 'secrets' | 'artifact' | 'metricRules' | 'analysisLoad' | 'warmupPaths' | 'mirror' | 'sequential'>, number>>;

export async function deploymentRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  admin.post<{ Body: DeployBody }>('/api/deployments', {
    schema: { body: { type: 'object', required: ['version'], properties: DEPLOY_FIELDS } },
  }, async (req, reply) => {
    const request = deployRequest(req.body, o.config, actorOf(req), o.releaseSecretsKey);
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

  for (const action of ['promote', 'step', 'rollback', 'pause', 'resume', 'abort'] as const) {
    // A body is optional ({"reason": "…"}), so `curl -X POST` alone works too.
    admin.post<{ Body: unknown }>(`/api/deployment/${action}`, async (req) => {
      const actor = actorOf(req);
      const { reason, from } = action === 'step' ? stepBodyOf(req.body) : { reason: reasonOf(req.body), from: undefined };
      switch (action) {
        case 'promote': return o.controller.promote(actor);
        case 'step': return o.controller.promoteStep(actor, reason, from);
        case 'rollback': return o.controller.rollback(actor, reason);
        case 'pause': return o.controller.pause(actor, reason);
        case 'resume': return o.controller.resume(actor);
        case 'abort': return o.controller.abort(actor, reason);
      }
    });
  }
}

/**
 * The step action's body: a reason, and optionally what the caller saw ({"deployment": id,
 * "fromStep": 2, "atGate": true}): then it moves only from there, so a second click moves nothing.
 */
function stepBodyOf(body: unknown): { reason: string | undefined; from: StepExpectation | undefined } {
  if (body === undefined || body === null || body === '') return { reason: undefined, from: undefined };
  if (typeof body !== 'object' || Array.isArray(body)) throw new CL_ERR_INVALID_REQUEST('body: expected a JSON object like {"reason": "…", "deployment": "dep-…", "fromStep": 2, "atGate": false} or nothing');
  const { deployment, fromStep, atGate, ...rest } = body as Record<string, unknown>;
  const reason = reasonOf(rest);
  const given = [deployment, fromStep, atGate].filter((v) => v !== undefined).length;
  if (given === 0) return { reason, from: undefined };
  if (given !== 3) throw new CL_ERR_INVALID_REQUEST('body: deployment, fromStep and atGate go together (what the caller saw)');
  if (typeof deployment !== 'string' || !DEPLOYMENT_ID.test(deployment)) throw new CL_ERR_INVALID_REQUEST('body/deployment: expected a deployment id');
  if (typeof fromStep !== 'number' || !Number.isInteger(fromStep) || fromStep < 1 || fromStep > 40) throw new CL_ERR_INVALID_REQUEST('body/fromStep: expected the step shown, an integer 1-40');
  if (typeof atGate !== 'boolean') throw new CL_ERR_INVALID_REQUEST('body/atGate: expected true or false');
  return { reason, from: { deploymentId: deployment, stepIndex: fromStep - 1, atGate } };
}

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

/** The deploy body with the appliance's defaults filled in, checked beyond what the schema can say. */
export function deployRequest(body: DeployBody, config: Config, actor: string, secretsKey?: Buffer): DeployRequest {
  const unknown = Object.keys(body).filter((k) => !Object.hasOwn(DEPLOY_FIELDS, k));
  if (unknown.length > 0) throw new CL_ERR_INVALID_REQUEST(`body/${unknown[0]}: unknown field (known: ${Object.keys(DEPLOY_FIELDS).join(', ')})`);
  const strategy = body.strategy ?? 'canary';
  if (body.steps !== undefined && strategy !== 'canary') throw new CL_ERR_INVALID_REQUEST(`body/steps: only a canary has steps (${strategy} switches 100 % at once)`);
  const parsed = parseStepsWithGates(body.steps ?? config.canarySteps);
  if (!parsed) throw new CL_ERR_INVALID_REQUEST(`body/steps: expected increasing percentages 1-100 ending at 100, each "pause" before a weight, got ${JSON.stringify(body.steps)}`);
  const { steps } = parsed;
  // Gates hold the steps they precede; --await-approval holds the final one (blue/green's and a direct's switch).
  const gates = strategy === 'canary' ? [...parsed.gates] : [];
  if (body.awaitApproval) gates.push(strategy === 'canary' ? steps.length - 1 : 0);
  let env: Record<string, string> | undefined;
  if (body.env !== undefined) {
    const checked = validateReleaseEnv(body.env, 'body/env');
    if ('error' in checked) throw new CL_ERR_INVALID_REQUEST(checked.error);
    // A sealed value is opened only where this appliance sealed it: from body/secrets.
    const sealed = Object.keys(checked.env).find((k) => checked.env[k]!.startsWith(SEALED_PREFIX));
    if (sealed !== undefined) throw new CL_ERR_INVALID_REQUEST(`body/env.${sealed}: a sealed value; give the secret in body/secrets`);
    env = checked.env;
  }
  if (body.secrets !== undefined) {
    // Sealed as they arrive: from here on they exist only sealed, until the supervisor starts the colour.
    if (!secretsKey) throw new CL_ERR_INVALID_REQUEST('body/secrets: this appliance cannot seal secrets (no release secrets key)');
    const checked = validateReleaseEnv(body.secrets, 'body/secrets');
    if ('error' in checked) throw new CL_ERR_INVALID_REQUEST(checked.error);
    const both = Object.keys(checked.env).find((k) => env !== undefined && Object.hasOwn(env, k));
    if (both !== undefined) throw new CL_ERR_INVALID_REQUEST(`body/secrets.${both}: also in body/env; give it once`);
    const ours = Object.keys(checked.env).find((k) => k.startsWith('CHANGELENS_'));
    if (ours !== undefined) throw new CL_ERR_INVALID_REQUEST(`body/secrets.${ours}: the appliance's own settings are not secrets; give it in body/env`);
    env = { ...env, ...Object.fromEntries(Object.entries(checked.env).map(([k, v]) => [k, sealSecret(secretsKey, v)])) };
    // What the supervisor will be given, checked now (sealed values are longer, and the count adds up).
    const merged = validateReleaseEnv(env, 'body/secrets');
    if ('error' in merged) throw new CL_ERR_INVALID_REQUEST(`${merged.error} (once sealed)`);
  }
  const metrics = parseMetricRules(body.metricRules ?? config.metricRules ?? '');
  if ('error' in metrics) throw new CL_ERR_INVALID_REQUEST(`body/metricRules: ${metrics.error}`);
  const loadText = body.analysisLoad ?? config.analysisLoad;
  const analysisLoad = loadText === undefined || loadText === '' ? undefined : parseAnalysisLoad(loadText);
  if (analysisLoad && 'error' in analysisLoad) throw new CL_ERR_INVALID_REQUEST(`body/analysisLoad: ${analysisLoad.error}`);
  // Blue/green judges against the stable colour before the switch, which the load never reached.
  if (body.analysisLoad && strategy === 'bluegreen') throw new CL_ERR_INVALID_REQUEST('body/analysisLoad: blue/green is judged against the stable colour before the switch, which an analysis load cannot fill; use a canary');
  // The synthetic warm-up asks for what the analysis load will: the paths that matter, if given.
  const warmupPaths = body.warmupPaths !== undefined ? parseAppPaths(body.warmupPaths.split(',')) : analysisLoad?.paths ?? parseAppPaths(config.warmupPaths.split(','));
  if ('error' in warmupPaths) throw new CL_ERR_INVALID_REQUEST(`body/warmupPaths: ${warmupPaths.error}`);
  // mirror false: this app's GETs are not safe to send twice — no copies at all, warm-up or analysis.
  const mirror = body.mirror ?? config.mirror === '1';
  if (body.mirrorPercent && !mirror) throw new CL_ERR_INVALID_REQUEST('body/mirrorPercent: copies of live requests are off for this deployment (mirror false); drop one of the two');
  const mirrorPercent = mirror ? body.mirrorPercent ?? config.mirrorPercent : 0;
  if (body.mirrorPercent && strategy === 'bluegreen') throw new CL_ERR_INVALID_REQUEST('body/mirrorPercent: blue/green\'s candidate takes every request once judged, so there is nothing to copy; use a canary');
  const maxP95Ms = body.maxP95Ms ?? config.maxP95Ms;
  const maxP99Ms = body.maxP99Ms ?? config.maxP99Ms;
  const plan: Plan = {
    stepSeconds: body.stepSeconds ?? config.stepSeconds,
    windowSeconds: body.windowSeconds ?? config.windowSeconds,
    rules: {
      p99Ratio: body.p99Ratio ?? config.p99Ratio,
      p99MinDeltaMs: body.p99MinDeltaMs ?? config.p99MinDeltaMs,
      maxErrorRate: body.maxErrorRate ?? config.maxErrorRate,
      minSamples: body.minSamples ?? config.minSamples,
      jobMinSamples: body.jobMinSamples ?? config.jobMinSamples,
      failuresToRollback: body.failuresToRollback ?? config.failuresToRollback,
      ...(maxP95Ms !== undefined ? { maxP95Ms } : {}),
      ...(maxP99Ms !== undefined ? { maxP99Ms } : {}),
      ...(metrics.length > 0 ? { metrics } : {}),
    },
    keepWarmSeconds: body.keepWarmSeconds ?? config.keepWarmSeconds,
    inspectSeconds: body.inspectSeconds ?? config.inspectSeconds,
    previewSeconds: body.previewSeconds ?? config.previewSeconds,
    tripConsecutive5xx: body.tripConsecutive5xx ?? config.tripConsecutive5xx,
    tripConsecutiveJobFailures: body.tripConsecutiveJobFailures ?? config.tripConsecutiveJobFailures,
    sequential: body.sequential ?? config.sequential === '1',
    progressDeadlineSeconds: body.progressDeadlineSeconds ?? config.progressDeadlineSeconds,
    progressDeadlineAction: config.progressDeadlineAction === 'pause' ? 'pause' : 'abort',
    ...(analysisLoad ? { analysisLoad } : {}),
    warmupSeconds: body.warmupSeconds ?? config.warmupSeconds,
    warmupMirror: mirror,
    warmupPaths,
    ...(mirrorPercent > 0 && strategy === 'canary' ? { mirrorPercent } : {}),
    ...(gates.length > 0 ? { gates: [...new Set(gates)].sort((a, b) => a - b) } : {}),
  };
  if (plan.windowSeconds > plan.stepSeconds) throw new CL_ERR_INVALID_REQUEST(`body/windowSeconds: expected at most stepSeconds (${plan.stepSeconds}), got ${plan.windowSeconds}`);
  return { version: body.version, strategy, steps, env, artifact: body.artifact, plan, actor };
}

/**
 * The seed's two exports: the deployment's result and its 5-second buckets, with what the job
 * rules found of the candidate's worker (each judged job window, from the stored verdicts).
 */
export async function exportDeployment(store: RolloutStore, id: string) {
  const d = await store.deployment(id);
  const [buckets, verdicts] = await Promise.all([store.buckets(id), store.verdicts(id)]);
  const jobWindows = verdicts.flatMap((v) => {
    const rules = v.rules.filter((r) => r.rule.startsWith('job_') || r.rule === 'consecutive_job_failures' || r.rule === 'sequential_job_errors');
    return rules.length === 0 ? [] : [{
      timestamp: new Date(v.window.startMs).toISOString(), window_end: new Date(v.window.endMs).toISOString(), verdict: v.verdict,
      rules: rules.map((r) => ({ rule: r.rule, verdict: r.verdict, observed: Number.isFinite(r.observed) ? r.observed : null, threshold: r.threshold, message: r.message })),
    }];
  });
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
      // The candidate's worker, judged on its jobs' outcomes against the stable worker's.
      job_windows: jobWindows,
    },
  };
}
