// The one configuration schema of ChangeLens. Sources, later ones win: defaults → config file
// (JSON, camelCase keys, given by --config or CHANGELENS_CONFIG) → environment variables.
// Validated once at process start and frozen; every problem is reported at once, naming the key as
// the operator wrote it (env name or file key) and the expected form. Only this file reads env.
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CL_ERR_CONFIG_INVALID } from './errors.js';
import { parseRegressionSpec } from './contracts/regressions.js';
import { parseWorkerRegressionSpec } from './contracts/worker-regressions.js';
import { parseMetricRules } from './contracts/metric-rules.js';
import { parseAnalysisLoad } from './contracts/analysis-load.js';
import { parseAppPaths } from './contracts/app-paths.js';
import { parseMonitorRules } from './contracts/monitor-rules.js';
import { cronProblem } from './contracts/cron.js';
import { parseS3Url } from './contracts/s3-url.js';
import { parseNotifyTargets } from './contracts/notify-targets.js';

export type Color = 'blue' | 'green';
export const COLORS: readonly Color[] = ['blue', 'green'];
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type AccessLog = 'off' | 'errors' | 'all';
export type Platform = 'auto' | 'bare' | 'docker' | 'cloudrun' | 'cloudbase';

// Parsers: the value when valid, undefined when not (the field's `expected` says what is).
/** A numeric setting's range, kept on its parser so other validators (the admin API's) reuse it. */
export interface NumericRange { min: number; max: number; integer: boolean }
const ranged = (range: NumericRange) => Object.assign((v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && (!range.integer || Number.isInteger(v)) && v >= range.min && v <= range.max ? v : undefined, { range });
const int = (min: number, max: number) => ranged({ min, max, integer: true });
const text = (pattern = /./) => (v: unknown): string | undefined =>
  typeof v === 'string' && pattern.test(v) ? v : undefined;
const oneOf = <T extends string>(...values: T[]) => (v: unknown): T | undefined =>
  values.includes(v as T) ? (v as T) : undefined;
const regressionSpec = (v: unknown): string | undefined =>
  typeof v === 'string' && 'regressions' in parseRegressionSpec(v) ? v : undefined;
const workerRegressionSpec = (v: unknown): string | undefined =>
  typeof v === 'string' && 'regressions' in parseWorkerRegressionSpec(v) ? v : undefined;
const port = int(1, 65535);
const num = (min: number, max: number) => ranged({ min, max, integer: false });
/**
 * Canary weights with gates: "pause" before a weight holds the deployment there until approved,
 * e.g. "5,25,pause,100" → steps [5, 25, 100], gates [2] (the index of the step it holds).
 */
export function parseStepsWithGates(v: unknown): { steps: number[]; gates: number[] } | undefined {
  const parts = typeof v === 'string' ? v.split(',').map((p) => p.trim()) : Array.isArray(v) ? v : undefined;
  if (!parts || parts.length > 40) return undefined;
  const weights: unknown[] = [];
  const gates: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] !== 'pause') weights.push(parts[i]);
    // A pause holds the weight after it: one per step, never last.
    else if (i + 1 < parts.length && parts[i + 1] !== 'pause') gates.push(weights.length);
    else return undefined;
  }
  const steps = parseSteps(weights);
  return steps ? { steps, gates } : undefined;
}

/** Canary weights in percent: strictly increasing, ending at 100, e.g. "5,25,50,100". */
export function parseSteps(v: unknown): number[] | undefined {
  const parts = typeof v === 'string' ? v.split(',').map((p) => p.trim()) : Array.isArray(v) ? v : undefined;
  if (!parts || parts.length === 0 || parts.length > 20) return undefined;
  const steps = parts.map((p) => (typeof p === 'number' ? p : /^\d+$/.test(String(p)) ? Number(p) : NaN));
  const ok = steps.every((w, i) => Number.isInteger(w) && w >= 1 && w <= 100 && (i === 0 || w > steps[i - 1]!)) && steps.at(-1) === 100;
  return ok ? steps : undefined;
}
const s3UrlSpec = (v: unknown): string | undefined => (typeof v === 'string' && !('error' in parseS3Url(v)) ? v : undefined);
/** A 5-field cron expression, or "off". */
const cronSpec = (v: unknown): string | undefined => (typeof v === 'string' && (v === 'off' || cronProblem(v) === null) ? v.trim() : undefined);
const stepsSpec = (v: unknown): string | undefined => (parseStepsWithGates(v) ? String(v) : undefined);
const monitorRulesSpec = (v: unknown): string | undefined => {
  const text = typeof v === 'string' ? v : Array.isArray(v) ? JSON.stringify(v) : undefined;
  return text !== undefined && Array.isArray(parseMonitorRules(text)) ? text : undefined;
};
const metricRulesSpec = (v: unknown): string | undefined => (typeof v === 'string' && Array.isArray(parseMetricRules(v)) ? v : undefined);
const analysisLoadSpec = (v: unknown): string | undefined => (typeof v === 'string' && !('error' in parseAnalysisLoad(v)) ? v : undefined);
const appPathsSpec = (v: unknown): string | undefined => (typeof v === 'string' && !('error' in parseAppPaths(v.split(','))) ? v : undefined);
const webhookUrl = (v: unknown): string | undefined => {
  if (typeof v !== 'string' || !/^https?:\/\/[^\s]+$/.test(v)) return undefined;
  try {
    const u = new URL(v);
    return u.username === '' && u.password === '' ? v : undefined;
  } catch {
    return undefined;
  }
};
const notifySpec = (v: unknown): string | undefined => (typeof v === 'string' && Array.isArray(parseNotifyTargets(v)) ? v : undefined);
const ipList = (v: unknown): string | undefined =>
  typeof v === 'string' && v.split(',').every((a) => isIP(a.trim()) !== 0) ? v : undefined;
const urlList = (v: unknown): string | undefined =>
  typeof v === 'string' && v.split(',').every((u) => /^https?:\/\/\S+$/.test(u.trim())) ? v : undefined;
export const ROOT_DATA_DIR = '/var/lib/changelens';
const secret = text(/^[A-Za-z0-9_\-.~+/=]{16,}$/);
/**
 * The admin token opens everything: at least 32 characters with real variety (10 different ones),
 * so `aaaa…` or a short word is refused; generated tokens are 256-bit.
 */
export const strongAdminToken = (v: unknown): v is string =>
  typeof v === 'string' && /^[A-Za-z0-9_\-.~+/=]{32,}$/.test(v) && new Set(v).size >= 10;
const adminTokenSpec = (v: unknown): string | undefined => (strongAdminToken(v) ? v : undefined);

// Each field: its parser, its env name and the expected form shown in errors.
const FIELDS = {
  port: { env: 'PORT', doc: 'the public port, the only one (the proxy)', kind: 'int', parse: port, expected: 'a TCP port 1-65535', default: 8080 },
  host: { env: 'CHANGELENS_HOST', doc: 'interface the public port binds', kind: 'string', parse: text(), expected: 'an interface address such as 0.0.0.0', default: '0.0.0.0' },
  dataDir: { env: 'CHANGELENS_DATA_DIR', doc: 'all state: postgres/, redis/, backups/, releases/, state/; the default is /var/lib/changelens when run as root, `/data` in the image', kind: 'string', parse: text(), expected: 'a directory path', default: './data' },
  pgPort: { env: 'CHANGELENS_PG_PORT', doc: 'embedded Postgres, loopback only', kind: 'int', parse: port, expected: 'a TCP port 1-65535', default: 5432 },
  redisPort: { env: 'CHANGELENS_REDIS_PORT', doc: 'embedded Redis, loopback only', kind: 'int', parse: port, expected: 'a TCP port 1-65535', default: 6379 },
  apiBluePort: { env: 'CHANGELENS_API_BLUE_PORT', doc: 'api-blue, loopback only', kind: 'int', parse: port, expected: 'a TCP port 1-65535', default: 3001 },
  apiGreenPort: { env: 'CHANGELENS_API_GREEN_PORT', doc: 'api-green, loopback only', kind: 'int', parse: port, expected: 'a TCP port 1-65535', default: 3002 },
  workerBluePort: { env: 'CHANGELENS_WORKER_BLUE_PORT', doc: 'worker-blue\'s health and control endpoint, loopback only', kind: 'int', parse: port, expected: 'a TCP port 1-65535', default: 3003 },
  workerGreenPort: { env: 'CHANGELENS_WORKER_GREEN_PORT', doc: 'worker-green\'s health and control endpoint, loopback only', kind: 'int', parse: port, expected: 'a TCP port 1-65535', default: 3004 },
  apiInstances: { env: 'CHANGELENS_API_INSTANCES', doc: 'pm2 cluster instances per API colour', kind: 'int', parse: int(1, 16), expected: 'an integer 1-16', default: 1 },
  readyTimeoutMs: { env: 'CHANGELENS_READY_TIMEOUT_MS', doc: 'how long each process may take to pass its readiness probe at boot', kind: 'int', parse: int(500, 600_000), expected: 'milliseconds, 500-600000', default: 30_000 },
  stopTimeoutMs: { env: 'CHANGELENS_STOP_TIMEOUT_MS', doc: 'shutdown budget; the proxy\'s drain gets all but 3 s of it', kind: 'int', parse: int(1000, 120_000), expected: 'milliseconds, 1000-120000', default: 8_000 },
  logLevel: { env: 'CHANGELENS_LOG_LEVEL', doc: 'log level of every process', kind: 'string', parse: oneOf<LogLevel>('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), expected: 'one of fatal, error, warn, info, debug, trace, silent', default: 'info' },
  serviceUser: { env: 'CHANGELENS_SERVICE_USER', doc: 'who runs Postgres, Redis, the proxy and the worker when the supervisor runs as root (the image: changelens)', kind: 'string', parse: text(/^[a-z_][a-z0-9_-]*$/), expected: 'an existing unprivileged user name', default: 'postgres' },
  releaseUser: { env: 'CHANGELENS_RELEASE_USER', doc: 'who runs the releases (API colours and uploaded apps) when the supervisor runs as root: not root, not the service user; scripts/install-system-deps.sh creates it', kind: 'string', parse: text(/^[a-z_][a-z0-9_-]*$/), expected: 'an existing unprivileged user name', default: 'changelens-app' },
  pgBinDir: { env: 'CHANGELENS_PG_BIN_DIR', doc: 'where initdb and postgres are (default: the newest /usr/lib/postgresql/*/bin)', kind: 'string', parse: text(), expected: 'the directory holding initdb and postgres', default: undefined },
  redisServer: { env: 'CHANGELENS_REDIS_SERVER', doc: 'the Redis server binary', kind: 'string', parse: text(), expected: 'the path of redis-server', default: 'redis-server' },
  databaseUrl: { env: 'DATABASE_URL', doc: 'use this Postgres: the embedded one is not started (external mode)', kind: 'string', parse: text(/^postgres(ql)?:\/\/.+/), expected: 'a URL postgres://user:password@host:port/db', default: undefined },
  redisUrl: { env: 'REDIS_URL', doc: 'use this Redis: the embedded one is not started (external mode)', kind: 'string', parse: text(/^rediss?:\/\/.+/), expected: 'a URL redis://[:password@]host:port[/db]', default: undefined },
  instanceId: { env: 'CHANGELENS_INSTANCE_ID', doc: 'this appliance\'s name in a fleet (external mode: both DATABASE_URL and REDIS_URL); default: generated on first boot and kept in state/instance-id', kind: 'string', parse: text(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/), expected: '1-64 characters of [A-Za-z0-9._-], starting with a letter or digit', default: undefined },
  instanceUrl: { env: 'CHANGELENS_INSTANCE_URL', doc: 'where this fleet instance is reached, as status lists it (default: none advertised; instances never need to reach each other, they meet in Postgres and Redis)', kind: 'string', parse: text(/^https?:\/\/[^\s]{1,200}$/), expected: 'a URL http(s)://host[:port]', default: undefined },
  fleetLeaseMs: { env: 'CHANGELENS_FLEET_LEASE_MS', doc: 'how long the controller lease lasts unrenewed (renewed every 1 s): another instance takes over at most this long after the controller stops answering', kind: 'int', parse: int(3_000, 60_000), expected: 'milliseconds, 3000-60000', default: 5_000 },
  fleetGraceMs: { env: 'CHANGELENS_FLEET_GRACE_MS', doc: 'an instance that has not said it is alive for this long is gone: no rollout waits for it', kind: 'int', parse: int(2_000, 120_000), expected: 'milliseconds, 2000-120000', default: 5_000 },
  adminToken: { env: 'CHANGELENS_ADMIN_TOKEN', doc: 'bearer token of the admin API (default: 256 random bits generated on first boot into state/secrets.json; e.g. openssl rand -base64 32)', kind: 'string', parse: adminTokenSpec, expected: 'at least 32 characters of [A-Za-z0-9_-.~+/=], at least 10 of them different', default: undefined },
  pgPassword: { env: 'CHANGELENS_PG_PASSWORD', doc: 'embedded Postgres\'s password (default: generated; fixed at initdb)', kind: 'string', parse: secret, expected: 'at least 16 characters of [A-Za-z0-9_-.~+/=]', default: undefined },
  redisPassword: { env: 'CHANGELENS_REDIS_PASSWORD', doc: 'embedded Redis\'s password (default: generated)', kind: 'string', parse: secret, expected: 'at least 16 characters of [A-Za-z0-9_-.~+/=]', default: undefined },
  otlpEndpoint: { env: 'OTEL_EXPORTER_OTLP_ENDPOINT', doc: 'export spans over OTLP/HTTP to this collector', kind: 'string', parse: text(/^https?:\/\/.+/), expected: 'an http(s) URL of an OTLP collector, e.g. http://collector:4318', default: undefined },
  accessLog: { env: 'CHANGELENS_ACCESS_LOG', doc: 'proxy access log lines', kind: 'string', parse: oneOf<AccessLog>('off', 'errors', 'all'), expected: 'off, errors (5xx and requests over 1 s) or all', default: 'errors' },
  seedItems: { env: 'CHANGELENS_SEED_ITEMS', doc: 'demo rows created in items on first boot, once', kind: 'int', parse: int(0, 1_000_000), expected: 'an integer 0-1000000 (rows of demo data created on first boot)', default: 10_000 },
  jobSplit: { env: 'CHANGELENS_JOB_SPLIT', doc: 'whose worker runs a job: api (the colour of the API that accepted it: a canary\'s API and worker are tested together) or weight (also the jobs the stable API accepts go to the candidate\'s worker by the rollout\'s weight)', kind: 'string', parse: oneOf<'api' | 'weight'>('api', 'weight'), expected: 'api or weight', default: 'api' },
  jobMaxAttempts: { env: 'CHANGELENS_JOB_MAX_ATTEMPTS', doc: 'attempts before a failing job goes to the dead-letter stream', kind: 'int', parse: int(1, 100), expected: 'an integer 1-100', default: 3 },
  jobClaimIdleMs: { env: 'CHANGELENS_JOB_CLAIM_IDLE_MS', doc: 'a job idle this long at a dead worker is taken over by another', kind: 'int', parse: int(100, 3_600_000), expected: 'milliseconds 100-3600000 (a job idle this long at a dead worker is taken over)', default: 30_000 },
  workerConcurrency: { env: 'CHANGELENS_WORKER_CONCURRENCY', doc: 'jobs a worker runs at once', kind: 'int', parse: int(1, 256), expected: 'an integer 1-256', default: 8 },
  downstreamTimeoutMs: { env: 'CHANGELENS_DOWNSTREAM_TIMEOUT_MS', doc: 'how long a timing-out downstream call hangs (dependency regression)', kind: 'int', parse: int(1, 60_000), expected: 'milliseconds 1-60000 (how long a timing-out downstream call hangs)', default: 1_000 },
  // A release's regressions from birth (the API reads it at start), e.g. cpu:50,errors:0.1.
  regression: { env: 'CHANGELENS_REGRESSION', doc: 'regressions the API carries from birth', kind: 'string', parse: regressionSpec, expected: 'type:intensity[,…] with types cpu (1-10000), db (1-10000), dependency (ms 1-60000, optionally /timeoutRate), errors (0-1), e.g. cpu:50,errors:0.1', default: undefined },
  // A release's worker regressions from birth (the worker reads it at start), e.g. errors:0.2.
  workerRegression: { env: 'CHANGELENS_WORKER_REGRESSION', doc: 'regressions the worker carries from birth', kind: 'string', parse: workerRegressionSpec, expected: 'type:intensity[,…] with types slow (ms 1-60000), errors (0-1), crash (0-1), e.g. errors:0.2', default: undefined },
  // Progressive delivery: the defaults of every deployment; a deploy may override each.
  canarySteps: { env: 'CHANGELENS_CANARY_STEPS', doc: 'canary weights in percent, one analysis period each (100 promotes); "pause" before a weight holds the deployment there until approved (changelens promote --step, the dashboard, or the gate webhook)', kind: 'string', parse: stepsSpec, expected: 'increasing percentages 1-100 ending at 100, e.g. 5,25,50,100 (or 10,100 for a fixed 90/10, or 5,25,pause,100 to approve the last step)', default: '5,25,50,100' },
  stepSeconds: { env: 'CHANGELENS_STEP_SECONDS', doc: 'analysis period of each canary step, and of blue/green\'s post-switch analysis', kind: 'int', parse: int(1, 86_400), expected: 'seconds 1-86400', default: 30 },
  windowSeconds: { env: 'CHANGELENS_WINDOW_SECONDS', doc: 'length of one judged window (merged 1 s slices)', kind: 'int', parse: int(1, 60), expected: 'seconds 1-60', default: 5 },
  p99Ratio: { env: 'CHANGELENS_P99_RATIO', doc: 'a window fails when the candidate\'s P99 exceeds the stable colour\'s by this factor', kind: 'number', parse: num(1, 1000), expected: 'a number 1-1000, e.g. 1.5', default: 1.5 },
  p99MinDeltaMs: { env: 'CHANGELENS_P99_MIN_DELTA_MS', doc: 'a latency window fails only when the candidate\'s P99 also exceeds the stable colour\'s by more than this (a regression a user would notice, not a busy box\'s noise); the sequential test counts as slow only what is slower than the stable P99 by as much', kind: 'number', parse: num(0, 60_000), expected: 'milliseconds 0-60000 (0: the ratio alone decides)', default: 20 },
  maxErrorRate: { env: 'CHANGELENS_MAX_ERROR_RATE', doc: 'a window fails when the candidate\'s share of 5xx exceeds this', kind: 'number', parse: num(0, 1), expected: 'a fraction 0-1, e.g. 0.05', default: 0.05 },
  maxP95Ms: { env: 'CHANGELENS_MAX_P95_MS', doc: 'absolute P95 ceiling of the candidate (none by default)', kind: 'number', parse: num(0.001, 600_000), expected: 'milliseconds 0.001-600000', default: undefined },
  maxP99Ms: { env: 'CHANGELENS_MAX_P99_MS', doc: 'absolute P99 ceiling of the candidate (none by default)', kind: 'number', parse: num(0.001, 600_000), expected: 'milliseconds 0.001-600000', default: undefined },
  minSamples: { env: 'CHANGELENS_MIN_SAMPLES', doc: 'fewer candidate requests than this in a window make it insufficient: neither pass nor fail', kind: 'int', parse: int(1, 1_000_000), expected: 'an integer 1-1000000', default: 50 },
  failuresToRollback: { env: 'CHANGELENS_FAILURES_TO_ROLLBACK', doc: 'consecutive failing windows that roll back', kind: 'int', parse: int(1, 100), expected: 'an integer 1-100', default: 2 },
  metricRules: { env: 'CHANGELENS_METRIC_RULES', doc: 'rules on metrics the app reports per response in x-changelens-metric-<name> headers, judged on each window\'s mean', kind: 'string', parse: metricRulesSpec, expected: 'name>=number or name<=number, comma-separated, e.g. recall_at_10>=0.30', default: undefined },
  artifactMaxMb: { env: 'CHANGELENS_ARTIFACT_MAX_MB', doc: 'the largest release artifact an upload may send', kind: 'int', parse: int(1, 10_000), expected: 'megabytes 1-10000', default: 200 },
  releasesKeep: { env: 'CHANGELENS_RELEASES_KEEP', doc: 'release artifact directories kept in releases/ (the active, last_good and running ones always are)', kind: 'int', parse: int(1, 1000), expected: 'an integer 1-1000', default: 10 },
  sequential: { env: 'CHANGELENS_SEQUENTIAL', doc: 'early verdicts: sequential tests on the candidate\'s slow and failed requests, checked every second (false-alarm bound ≈ 0.44 % per deployment)', kind: 'string', parse: oneOf('0', '1'), expected: '1 (on) or 0 (off: windows and fast trips only)', default: '1' },
  tripConsecutiveJobFailures: { env: 'CHANGELENS_TRIP_CONSECUTIVE_JOB_FAILURES', doc: 'this many failed job attempts in a row from the candidate\'s worker roll back at once, without waiting for a window (0: off)', kind: 'int', parse: int(0, 10_000), expected: 'an integer 0-10000 (0 turns the trip off)', default: 5 },
  jobMinSamples: { env: 'CHANGELENS_JOB_MIN_SAMPLES', doc: 'job outcomes the candidate\'s worker needs in a window before its job rules (failure rate, P99 ratio) are judged', kind: 'int', parse: int(1, 1_000_000), expected: 'an integer 1-1000000', default: 20 },
  tripConsecutive5xx: { env: 'CHANGELENS_TRIP_CONSECUTIVE_5XX', doc: 'this many 5xx in a row from the candidate roll back at once, without waiting for a window (0: off)', kind: 'int', parse: int(0, 10_000), expected: 'an integer 0-10000 (0 turns the trip off)', default: 5 },
  analysisLoad: { env: 'CHANGELENS_ANALYSIS_LOAD', doc: 'built-in analysis load for a box with little traffic: the proxy drives each colour at RATE req/s on the paths (GET, pinned), from the candidate\'s first step to the end, so windows become decisive (none by default)', kind: 'string', parse: analysisLoadSpec, expected: 'RATE[,PATH…], e.g. 40,/api/data (RATE per colour, up to 500)', default: undefined },
  warmupSeconds: { env: 'CHANGELENS_WARMUP_SECONDS', doc: 'before its first step the candidate is warmed up on copies of live GET/HEAD requests (answers discarded), topped up with synthetic GETs of the warm-up paths when live traffic is short; it ends after this long or 300 2xx/3xx answers, whichever is first (0: no warm-up)', kind: 'int', parse: int(0, 600), expected: 'seconds 0-600', default: 5 },
  warmupPaths: { env: 'CHANGELENS_WARMUP_PATHS', doc: 'the paths of the synthetic warm-up GETs (a deployment\'s analysis load\'s paths, when it has one)', kind: 'string', parse: appPathsSpec, expected: 'comma-separated app paths like /api/data (up to 10; not /_changelens, /healthz or /readyz)', default: '/' },
  mirror: { env: 'CHANGELENS_MIRROR', doc: 'copies of live GET/HEAD requests go to the candidate: its warm-up, and the analysis with a mirror percent (0: no copies at all, synthetic warm-up GETs only, for an app whose GETs are not safe to send twice)', kind: 'string', parse: oneOf('0', '1'), expected: '1 (copy live requests) or 0 (synthetic only)', default: '1' },
  mirrorPercent: { env: 'CHANGELENS_MIRROR_PERCENT', doc: 'during the analysis, this share of the live GET/HEAD requests the stable colour serves is also copied to the candidate and judged as its requests (answers discarded): more samples at a small step', kind: 'number', parse: num(0, 100), expected: 'a percentage 0-100 (0: no mirroring during the analysis)', default: 0 },
  mirrorMaxRps: { env: 'CHANGELENS_MIRROR_MAX_RPS', doc: 'the most copies and synthetic warm-up requests the proxy sends per second (past it they are skipped and counted); at most 32 in flight per colour', kind: 'int', parse: int(1, 100_000), expected: 'requests per second 1-100000', default: 200 },
  progressDeadlineSeconds: { env: 'CHANGELENS_PROGRESS_DEADLINE_SECONDS', doc: 'a deployment with no decisive verdict (pass or fail) for this long — too few requests reach the candidate — is ended by the deadline action, audited; an operator\'s pause stops the clock (0: no deadline)', kind: 'int', parse: int(0, 604_800), expected: 'seconds 0-604800', default: 600 },
  progressDeadlineAction: { env: 'CHANGELENS_PROGRESS_DEADLINE_ACTION', doc: 'what the progress deadline does: abort the deployment (traffic back to stable) or pause it for an operator', kind: 'string', parse: oneOf('abort', 'pause'), expected: 'abort or pause', default: 'abort' },
  keepWarmSeconds: { env: 'CHANGELENS_KEEP_WARM_SECONDS', doc: 'how long the previous colour keeps running after a promotion, so switching back is instant', kind: 'int', parse: int(0, 604_800), expected: 'seconds 0-604800', default: 300 },
  inspectSeconds: { env: 'CHANGELENS_INSPECT_SECONDS', doc: 'how long a rolled-back candidate keeps running for inspection (pin to it)', kind: 'int', parse: int(0, 604_800), expected: 'seconds 0-604800', default: 600 },
  previewSeconds: { env: 'CHANGELENS_PREVIEW_SECONDS', doc: 'blue/green: how long the new colour is reachable by pin only before the switch', kind: 'int', parse: int(0, 86_400), expected: 'seconds 0-86400', default: 0 },
  trustedProxies: { env: 'CHANGELENS_TRUSTED_PROXIES', doc: 'addresses of the proxies in front that end TLS: only their X-Forwarded-Proto is believed (the dashboard\'s cookie is then Secure); on Cloud Run and CloudBase it always is', kind: 'string', parse: ipList, expected: 'comma-separated IP addresses, e.g. 10.0.0.2,10.0.0.3', default: undefined },
  hookUrls: { env: 'CHANGELENS_HOOK_URLS', doc: 'webhooks POSTed a JSON event on deploy, promote and rollback', kind: 'string', parse: urlList, expected: 'comma-separated http(s) URLs', default: undefined },
  notify: { env: 'CHANGELENS_NOTIFY', doc: 'chat notifications of each deployment\'s moments (deployed, held at a gate or paused, promoted, rolled back with what fired, failed, aborted) in each service\'s own message format, retried with backoff; a notification that finally fails is audited and shown in status. The URLs are secrets: shown as kind and host only', kind: 'string', parse: notifySpec, expected: 'kind:URL, comma-separated (up to 10), kinds slack, teams (a workflow\'s webhook), wecom, dingtalk, webhook (the event as JSON), e.g. slack:https://hooks.slack.com/services/…', default: undefined },
  publicUrl: { env: 'CHANGELENS_PUBLIC_URL', doc: 'the appliance\'s public origin as its users reach it (https://app.example.com): notifications link to the deployment\'s page on its dashboard', kind: 'string', parse: text(/^https?:\/\/[^\s/]+\/?$/), expected: 'an http(s) origin like https://app.example.com', default: undefined },
  gateUrl: { env: 'CHANGELENS_GATE_URL', doc: 'the gate webhook: while a deployment waits at a gate (a pause in its steps, or --await-approval), it is POSTed the deployment as JSON every window; a 2xx answer from the URL itself (redirects are not followed) approves the held step (Flagger\'s confirm-promotion)', kind: 'string', parse: webhookUrl, expected: 'an http(s) URL without a user or password in it', default: undefined },
  hookCommand: { env: 'CHANGELENS_HOOK_COMMAND', doc: 'shell command run on deploy, promote and rollback; the event is on stdin (JSON) and in CHANGELENS_EVENT', kind: 'string', parse: text(), expected: 'a shell command', default: undefined },
  hookTimeoutMs: { env: 'CHANGELENS_HOOK_TIMEOUT_MS', doc: 'how long one hook may take', kind: 'int', parse: int(100, 300_000), expected: 'milliseconds 100-300000', default: 10_000 },
  // The monitor: rules on the appliance's own metrics that scale, restart and alert.
  monitorRules: { env: 'CHANGELENS_MONITOR_RULES', doc: 'monitor rules as a JSON array of {name, metric, op, threshold, forSeconds, action, cooldownSeconds[, url, command]}; [] turns them off (default: the rules in docs/operations.md)', kind: 'string', parse: monitorRulesSpec, expected: 'a JSON array of rules, e.g. [{"name":"cpu-high","metric":"cpu_percent","op":">","threshold":80,"forSeconds":300,"action":"scale_up","cooldownSeconds":300}]', default: undefined },
  monitorIntervalSeconds: { env: 'CHANGELENS_MONITOR_INTERVAL_SECONDS', doc: 'how often the monitor samples and judges its rules', kind: 'int', parse: int(1, 3600), expected: 'seconds 1-3600', default: 10 },
  apiMaxInstances: { env: 'CHANGELENS_API_MAX_INSTANCES', doc: 'the most instances scale_up gives the active API colour (the fewest is CHANGELENS_API_INSTANCES; default: 4, or CHANGELENS_API_INSTANCES if more)', kind: 'int', parse: int(1, 16), expected: 'an integer 1-16, at least CHANGELENS_API_INSTANCES', default: undefined },
  // Backups (backup/): schedules in the machine's time zone (TZ), retention, safety margins.
  backupPgSchedule: { env: 'CHANGELENS_BACKUP_PG_SCHEDULE', doc: 'when Postgres is backed up (pg_dump -Fc)', kind: 'string', parse: cronSpec, expected: 'a 5-field cron expression (e.g. "0 2 * * *") or off', default: '0 2 * * *' },
  backupRedisSchedule: { env: 'CHANGELENS_BACKUP_REDIS_SCHEDULE', doc: 'when Redis is backed up (BGSAVE, then the snapshot copied); embedded Redis only', kind: 'string', parse: cronSpec, expected: 'a 5-field cron expression (e.g. "0 */6 * * *") or off', default: '0 */6 * * *' },
  backupVerifySchedule: { env: 'CHANGELENS_BACKUP_VERIFY_SCHEDULE', doc: 'when the newest backup is verified (checksums, pg_restore --list, a restore into a scratch database or Redis)', kind: 'string', parse: cronSpec, expected: 'a 5-field cron expression (e.g. "30 3 * * 0") or off', default: '30 3 * * 0' },
  backupKeep: { env: 'CHANGELENS_BACKUP_KEEP', doc: 'good backups kept per kind (Postgres, Redis), newest first', kind: 'int', parse: int(1, 1000), expected: 'an integer 1-1000', default: 7 },
  backupMaxAgeDays: { env: 'CHANGELENS_BACKUP_MAX_AGE_DAYS', doc: 'backups older than this are deleted, except the newest of each kind (0: no age limit)', kind: 'int', parse: int(0, 3650), expected: 'days 0-3650', default: 30 },
  backupMinFreeMb: { env: 'CHANGELENS_BACKUP_MIN_FREE_MB', doc: 'a backup starts only if the disk keeps this much free after it (estimated from the database and snapshot sizes)', kind: 'int', parse: int(0, 1_000_000), expected: 'megabytes 0-1000000', default: 256 },
  backupEncrypt: { env: 'CHANGELENS_BACKUP_ENCRYPT', doc: 'encrypt backups at rest (AES-256-GCM) with the backup key, and take state/secrets.json along, encrypted', kind: 'string', parse: oneOf('0', '1'), expected: '0 or 1', default: '0' },
  backupKey: { env: 'CHANGELENS_BACKUP_KEY', doc: 'the key backups are encrypted with (default: generated into state/secrets.json; keep a copy off the box, or encrypted backups cannot be read on a new one)', kind: 'string', parse: secret, expected: 'at least 16 characters of [A-Za-z0-9_-.~+/=]', default: undefined },
  backupS3Url: { env: 'CHANGELENS_BACKUP_S3_URL', doc: 'copy every good backup off the box to S3-compatible storage (AWS S3, Tencent COS, MinIO) under this bucket and prefix; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY', kind: 'string', parse: s3UrlSpec, expected: 's3://bucket or s3://bucket/prefix', default: undefined },
  backupOffsitePlain: { env: 'CHANGELENS_BACKUP_OFFSITE_PLAIN', doc: 'allow off-box copies without encryption (CHANGELENS_BACKUP_S3_URL with CHANGELENS_BACKUP_ENCRYPT=0): refused unless this is 1', kind: 'string', parse: oneOf('0', '1'), expected: '0 or 1', default: '0' },
  backupS3Endpoint: { env: 'CHANGELENS_BACKUP_S3_ENDPOINT', doc: 'the storage service\'s endpoint (COS: https://cos.<region>.myqcloud.com); default: AWS S3\'s for the region', kind: 'string', parse: text(/^https?:\/\/[^\s]+$/), expected: 'an http(s) URL', default: undefined },
  backupS3Region: { env: 'CHANGELENS_BACKUP_S3_REGION', doc: 'the bucket\'s region (COS: e.g. ap-shanghai)', kind: 'string', parse: text(/^[a-z0-9-]{2,40}$/), expected: 'a region name like us-east-1 or ap-shanghai', default: 'us-east-1' },
  backupS3PathStyle: { env: 'CHANGELENS_BACKUP_S3_PATH_STYLE', doc: 'path-style bucket addressing (MinIO and most self-hosted stores)', kind: 'string', parse: oneOf('0', '1'), expected: '0 or 1', default: '0' },
  backupBeforeDeploy: { env: 'CHANGELENS_BACKUP_BEFORE_DEPLOY', doc: 'back up Postgres before each deployment starts its candidate (a failed backup refuses the deployment)', kind: 'string', parse: oneOf('0', '1'), expected: '0 or 1', default: '0' },
  platform: { env: 'CHANGELENS_PLATFORM', doc: 'where it runs; cloudrun and cloudbase refuse embedded Postgres on a non-durable data dir', kind: 'string', parse: oneOf<Platform>('auto', 'bare', 'docker', 'cloudrun', 'cloudbase'), expected: 'auto, bare, docker, cloudrun or cloudbase', default: 'auto' },
  ephemeral: { env: 'CHANGELENS_EPHEMERAL', doc: 'demo mode on cloud platforms: embedded data may vanish with the instance', kind: 'string', parse: oneOf('0', '1'), expected: '0 or 1 (1: demo mode, embedded data may be lost with the instance)', default: '0' },
  // Set by Cloud Run in every container it runs.
  cloudRunService: { env: 'K_SERVICE', doc: 'set by Cloud Run; its presence means the platform is Cloud Run', kind: 'string', parse: text(), expected: 'a Cloud Run service name', default: undefined },
  // Set by the supervisor each time it starts a colour: run-time changes (regressions) belong to it.
  releaseId: { env: 'CHANGELENS_RELEASE_ID', kind: 'string', doc: 'set by the supervisor for each start of a colour (internal)', parse: text(/^[a-z0-9-]{1,64}$/), expected: 'an id of a-z, 0-9 and -', default: undefined },
  // Set by pm2 for each process it runs: stable across restarts of that process.
  pmId: { env: 'pm_id', doc: 'set by pm2 for each process (internal)', kind: 'int', parse: int(0, 1_000_000), expected: 'a pm2 process id', default: undefined },
  // Set by the supervisor for the proxy: seals a release's secret settings (lib/contracts/release-secrets.ts).
  releaseSecretsKey: { env: 'CHANGELENS_RELEASE_SECRETS_KEY', doc: 'set by the supervisor for the proxy: the key a release\'s secret settings are sealed with (internal)', kind: 'string', parse: text(/^[A-Za-z0-9_-]{43}$/), expected: '32 bytes, base64url', default: undefined },
  // Set by the supervisor for the built-in API: the credential of its control routes (lib/contracts/app-control.ts).
  appControlToken: { env: 'CHANGELENS_APP_CONTROL_TOKEN', doc: 'set by the supervisor for the built-in API: the control routes (regressions, metrics reset) need it (internal)', kind: 'string', parse: secret, expected: 'at least 16 characters of [A-Za-z0-9_-.~+/=]', default: undefined },
  // Set by the supervisor for the proxy: it holds the public port and hands connections over IPC.
  connectionHandoff: { env: 'CHANGELENS_CONNECTION_HANDOFF', doc: 'set by the supervisor for the proxy: take the public connections from the supervisor, which holds the port (internal)', kind: 'string', parse: oneOf('0', '1'), expected: '0 or 1', default: '0' },
  // Set by the supervisor for the processes it starts: which colour this API copy is.
  color: { env: 'CHANGELENS_COLOR', doc: 'set by the supervisor for each API copy (internal)', kind: 'string', parse: oneOf<Color>('blue', 'green'), expected: 'blue or green', default: undefined },
} as const;

type Fields = typeof FIELDS;
type FieldValue<K extends keyof Fields> = Exclude<ReturnType<Fields[K]['parse']>, undefined>;
type Required = { [K in keyof Fields as Fields[K]['default'] extends undefined ? never : K]: FieldValue<K> };
type Optional = { [K in keyof Fields as Fields[K]['default'] extends undefined ? K : never]?: FieldValue<K> };
export type Config = Readonly<Required & Optional>;

/** Environment variables that are not config keys but are ours to read. */
/** The CLI's own: which appliance to talk to. */
const OTHER_ENV = new Set(['CHANGELENS_CONFIG', 'CHANGELENS_URL']);
const ENV_TO_FIELD = new Map<string, keyof Fields>(
  (Object.keys(FIELDS) as (keyof Fields)[]).map((k) => [FIELDS[k].env, k]),
);

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file; defaults to $CHANGELENS_CONFIG when set. */
  file?: string | undefined;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  const raw: Record<string, { value: unknown; source: string }> = {};

  const file = options.file ?? env.CHANGELENS_CONFIG;
  if (file !== undefined && file !== '') {
    for (const [key, value] of Object.entries(readConfigFile(file, problems))) {
      if (!Object.hasOwn(FIELDS, key) || key === 'color') {
        problems.push(`${file}: unknown key "${key}" (known keys: ${Object.keys(FIELDS).filter((k) => k !== 'color').join(', ')})`);
        continue;
      }
      raw[key] = { value, source: `${file}: ${key}` };
    }
  }

  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    // An empty env var means "not set", as shells and platforms often pass them.
    if (value === '') continue;
    const field = ENV_TO_FIELD.get(name);
    if (field === undefined) {
      if (name.startsWith('CHANGELENS_') && !OTHER_ENV.has(name)) {
        problems.push(`${name}: unknown setting (known: ${[...ENV_TO_FIELD.keys()].filter((k) => k.startsWith('CHANGELENS_')).join(', ')})`);
      }
      continue;
    }
    const kind: string = FIELDS[field].kind;
    raw[field] = { value: kind === 'int' ? parseIntStrict(value) : kind === 'number' ? parseNumberStrict(value) : value, source: name };
  }

  const out: Record<string, unknown> = {};
  for (const key of Object.keys(FIELDS) as (keyof Fields)[]) {
    const spec = FIELDS[key];
    const given = raw[key];
    if (given === undefined) {
      if (spec.default !== undefined) out[key] = spec.default;
      continue;
    }
    const parsed = (spec.parse as (v: unknown) => unknown)(given.value);
    if (parsed !== undefined) out[key] = parsed;
    else problems.push(`${given.source}: expected ${spec.expected}, got ${HIDDEN_VALUES.has(key) ? 'a value not shown here (it may be a secret)' : JSON.stringify(given.value)}${explain(key, given.value)}`);
  }

  checkPortsDistinct(out, raw, problems);
  if (typeof out.apiMaxInstances === 'number' && typeof out.apiInstances === 'number' && out.apiMaxInstances < out.apiInstances) {
    problems.push(`${raw.apiMaxInstances!.source}: expected at least CHANGELENS_API_INSTANCES (${out.apiInstances}), got ${out.apiMaxInstances}`);
  }
  // Backups leaving the box are encrypted, unless the operator says otherwise in so many words.
  if (out.backupS3Url !== undefined && out.backupEncrypt !== '1' && out.backupOffsitePlain !== '1') {
    problems.push(`${raw.backupS3Url?.source ?? 'CHANGELENS_BACKUP_S3_URL'}: off-box copies would leave unencrypted; set CHANGELENS_BACKUP_ENCRYPT=1 (and keep the backup key off the box), or CHANGELENS_BACKUP_OFFSITE_PLAIN=1 to send them plain`);
  }
  if (problems.length > 0) throw new CL_ERR_CONFIG_INVALID(problems.map((p) => `  - ${p}`).join('\n'));
  // As root, ./data would usually sit under /root (0700), where the unprivileged user that runs
  // Postgres cannot reach it: the machine-wide place is the default instead.
  if (raw.dataDir === undefined && process.getuid?.() === 0) out.dataDir = ROOT_DATA_DIR;
  out.dataDir = resolve(out.dataDir as string);
  return Object.freeze(out) as Config;
}

/** Settings whose refused value is not echoed: a typo in a token or a webhook URL is still a secret. */
const HIDDEN_VALUES = new Set<keyof Fields>(['adminToken', 'pgPassword', 'redisPassword', 'backupKey', 'appControlToken', 'releaseSecretsKey', 'databaseUrl', 'redisUrl', 'hookUrls', 'hookCommand', 'notify', 'gateUrl']);

/** The specific reason a structured value was refused, where there is more to say than its form. */
function explain(key: keyof Fields, value: unknown): string {
  if (key === 'notify' && typeof value === 'string') {
    const result = parseNotifyTargets(value);
    return 'error' in result ? ` (${result.error})` : '';
  }
  if (key === 'monitorRules') {
    const result = parseMonitorRules(typeof value === 'string' ? value : JSON.stringify(value));
    return 'error' in result ? ` (${result.error})` : '';
  }
  if (key === 'workerRegression' && typeof value === 'string') {
    const result = parseWorkerRegressionSpec(value);
    return 'problems' in result ? ` (${result.problems.join('; ')})` : '';
  }
  if (key !== 'regression' || typeof value !== 'string') return '';
  const result = parseRegressionSpec(value);
  return 'problems' in result ? ` (${result.problems.join('; ')})` : '';
}

function readConfigFile(file: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`CHANGELENS_CONFIG: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return {};
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      problems.push(`${file}: expected a JSON object at the top level`);
      return {};
    }
    return parsed as Record<string, unknown>;
  } catch (err) {
    problems.push(`${file}: not valid JSON (${(err as Error).message})`);
    return {};
  }
}

function parseNumberStrict(value: string): number | string {
  return /^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(value.trim()) ? Number(value.trim()) : value;
}

function parseIntStrict(value: string): number | string {
  return /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
}

const PORT_KEYS = ['port', 'pgPort', 'redisPort', 'apiBluePort', 'apiGreenPort', 'workerBluePort', 'workerGreenPort'] as const;

function checkPortsDistinct(out: Record<string, unknown>, raw: Record<string, { source: string }>, problems: string[]): void {
  const seen = new Map<number, string>();
  for (const key of PORT_KEYS) {
    // An external service's port is not ours to bind, so it cannot clash.
    if (key === 'pgPort' && out.databaseUrl !== undefined) continue;
    if (key === 'redisPort' && out.redisUrl !== undefined) continue;
    const value = out[key] as number | undefined;
    if (value === undefined) continue; // invalid, and already reported
    const name = raw[key]?.source ?? `${FIELDS[key].env} (default)`;
    const other = seen.get(value);
    if (other !== undefined) problems.push(`${name}: port ${value} is already used by ${other}; expected distinct ports`);
    else seen.set(value, name);
  }
}

export interface ConfigFieldReference {
  key: string;
  env: string;
  expected: string;
  default: string | number | undefined;
  doc: string;
  /** Set by the supervisor or pm2, not by operators. */
  internal: boolean;
}

/** Every setting, for the configuration reference (docs/configuration.md is generated from it). */
export function configReference(): ConfigFieldReference[] {
  return (Object.keys(FIELDS) as (keyof Fields)[]).map((key) => ({
    key, env: FIELDS[key].env, expected: FIELDS[key].expected, default: FIELDS[key].default, doc: FIELDS[key].doc,
    internal: key === 'color' || key === 'pmId' || key === 'cloudRunService' || key === 'releaseId' || key === 'connectionHandoff' || key === 'appControlToken' || key === 'releaseSecretsKey',
  }));
}

/** The range of a numeric setting (what its env var accepts), for validators of the same value elsewhere. */
export function rangeOf(key: keyof Fields): NumericRange {
  const range = (FIELDS[key].parse as { range?: NumericRange }).range;
  if (!range) throw new Error(`${String(key)} is not a numeric setting`);
  return range;
}

export type ConfigKey = keyof Fields;

/**
 * One setting as a command-line option sees it: what it means, what it accepts and its default,
 * and its validator (the CLI's deploy flags check what the appliance would, before sending).
 */
export function settingSpec(key: ConfigKey): { env: string; doc: string; expected: string; default: string | number | undefined; numeric: boolean; check: (value: unknown) => unknown } {
  const f = FIELDS[key];
  return { env: f.env, doc: f.doc, expected: f.expected, default: f.default, numeric: f.kind !== 'string', check: (value) => (f.parse as (v: unknown) => unknown)(value) };
}

/** The env var name of a config key, for messages ("set CHANGELENS_PG_PORT"). */
export function envNameOf(key: keyof Fields): string {
  return FIELDS[key].env;
}

/**
 * The environment a child process needs to rebuild the same config: every set key as its env var.
 * Secrets are passed too (children connect with them); env is visible only to the same user.
 */
export function configToEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of Object.keys(FIELDS) as (keyof Fields)[]) {
    const value = config[key];
    if (value !== undefined) env[FIELDS[key].env] = String(value);
  }
  return env;
}
