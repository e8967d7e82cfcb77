// The rollout commands: deploy (optionally waiting for the verdict), promote, rollback, pause,
// resume, abort, releases, audit and export. Thin clients of the admin API; each has --json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { parse } from './args.js';
import { loadConfig } from '../lib/config.js';
import { isTerminal } from '../lib/contracts/phases.js';
import { ChangeLensError, CL_ERR_CLI_USAGE, CL_ERR_UNREACHABLE, EXIT } from '../lib/errors.js';
import type { AuditEvent } from '../lib/audit.js';
import type { Deployment, Release, StoredVerdict } from '../rollout/index.js';
import { adminClient } from './admin-client.js';

type Command = (args: string[]) => Promise<number>;

/** CLI flag → deploy body field, and how the flag's text becomes a value. */
const NUMERIC_FLAGS = {
  'step-seconds': 'stepSeconds', 'window-seconds': 'windowSeconds', 'p99-ratio': 'p99Ratio', 'max-error-rate': 'maxErrorRate',
  'max-p95-ms': 'maxP95Ms', 'max-p99-ms': 'maxP99Ms', 'min-samples': 'minSamples', 'failures-to-rollback': 'failuresToRollback',
  'keep-warm-seconds': 'keepWarmSeconds', 'inspect-seconds': 'inspectSeconds', 'preview-seconds': 'previewSeconds',
  'trip-consecutive-5xx': 'tripConsecutive5xx', 'trip-consecutive-job-failures': 'tripConsecutiveJobFailures', 'job-min-samples': 'jobMinSamples', 'p99-min-delta-ms': 'p99MinDeltaMs', 'progress-deadline': 'progressDeadlineSeconds',
  'warmup-seconds': 'warmupSeconds', 'mirror-percent': 'mirrorPercent',
} as const;

export const ROLLOUT_USAGE = `  (each of these takes --url URL, or CHANGELENS_URL, to drive a remote appliance with CHANGELENS_ADMIN_TOKEN)
  changelens deploy <version> [--strategy canary|bluegreen|direct] [--steps 5,25,50,100] [--step-seconds 30]
                   [--window-seconds 5] [--set KEY=VALUE]… [--secret KEY=VALUE]… [--artifact PATH] [--wait] [--json]
                   [--p99-ratio 1.5] [--max-error-rate 0.05] [--max-p95-ms N] [--max-p99-ms N] [--min-samples 50]
                   [--failures-to-rollback 2] [--keep-warm-seconds 300] [--inspect-seconds 600] [--preview-seconds 0]
                   [--trip-consecutive-5xx 5] [--trip-consecutive-job-failures 5] [--job-min-samples 20]
                   [--metric-rules recall_at_10>=0.30] [--no-sequential]
                   [--p99-min-delta-ms 20] [--progress-deadline 600] [--analysis-load RATE[,PATH…]]
                   [--warmup-seconds 5] [--warmup-paths PATH[,PATH…]] [--no-mirror] [--mirror-percent 0]
                   [--timeout SECONDS (with --wait)]
                                           roll a release out on the idle colour; --wait exits 0 promoted,
                                           1 rolled back or failed, 4 paused, aborted (progress deadline)
                                           or --timeout passed, 3 unreachable, 5 unauthorized, 2 bad usage
  changelens promote|rollback|pause|resume|abort [--reason TEXT] [--json]
                                           act on the running deployment
  changelens deployments [--limit N] [--json] | changelens deployment <id> [--json]
  changelens releases [--json]             releases, and which is active and last_good
  changelens audit [--since 1h] [--json]   the audit log
  changelens export <deployment-id> [--out DIR] [--json]
                                           the result and 5-second bucket metrics (result.json, metrics.json)`;

const common = { json: { type: 'boolean' }, config: { type: 'string' }, url: { type: 'string' } } as const;

export const rolloutCommands: Record<string, Command> = {
  async deploy(args) {
    const options = {
      ...common, strategy: { type: 'string' }, steps: { type: 'string' }, 'metric-rules': { type: 'string' }, 'analysis-load': { type: 'string' }, 'warmup-paths': { type: 'string' }, 'no-mirror': { type: 'boolean' }, 'no-sequential': { type: 'boolean' }, set: { type: 'string', multiple: true }, secret: { type: 'string', multiple: true }, artifact: { type: 'string' }, wait: { type: 'boolean' }, timeout: { type: 'string' },
      ...Object.fromEntries(Object.keys(NUMERIC_FLAGS).map((f) => [f, { type: 'string' }])),
    } as const satisfies ParseArgsConfig['options'];
    const { values, positionals } = parse(args, options, true);
    const [version, ...extra] = positionals;
    if (version === undefined || extra.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens deploy <version> [options] (changelens --help lists them)');
    let timeoutSeconds: number | undefined;
    if (values.timeout !== undefined) {
      if (!values.wait) throw new CL_ERR_CLI_USAGE('--timeout: only with --wait');
      if (!/^\d+$/.test(values.timeout) || Number(values.timeout) < 1) throw new CL_ERR_CLI_USAGE(`--timeout: expected whole seconds ≥ 1, got ${JSON.stringify(values.timeout)}`);
      timeoutSeconds = Number(values.timeout);
    }
    const body: Record<string, unknown> = { version };
    if (values.strategy !== undefined) body.strategy = values.strategy;
    if (values.steps !== undefined) {
      const steps = values.steps.split(',').map((s) => s.trim());
      if (!steps.every((s) => /^\d+$/.test(s))) throw new CL_ERR_CLI_USAGE(`--steps: expected percentages like 5,25,50,100, got ${JSON.stringify(values.steps)}`);
      body.steps = steps.map(Number);
    }
    for (const [flag, field] of Object.entries(NUMERIC_FLAGS)) {
      const raw = (values as Record<string, unknown>)[flag] as string | undefined;
      if (raw === undefined) continue;
      if (!/^-?(\d+\.?\d*|\.\d+)$/.test(raw)) throw new CL_ERR_CLI_USAGE(`--${flag}: expected a number, got ${JSON.stringify(raw)}`);
      body[field] = Number(raw);
    }
    if (values.set) {
      const env: Record<string, string> = {};
      for (const pair of values.set) {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new CL_ERR_CLI_USAGE(`--set ${pair}: expected KEY=VALUE`);
        env[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      body.env = env;
    }
    if (values.secret) {
      // Sealed by the appliance on arrival; shown nowhere after (not in releases, audit or logs).
      const secrets: Record<string, string> = {};
      for (const pair of values.secret) {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new CL_ERR_CLI_USAGE('--secret: expected KEY=VALUE (the value is not shown here)');
        secrets[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      body.secrets = secrets;
    }
    const api = client(values);
    if (values.artifact !== undefined) {
      // A remote appliance cannot read this machine's files: the artifact travels with the request.
      if (api.remote) {
        const uploaded = await api.upload<{ sha256: string; bytes: number; unchanged: boolean }>(version, await asTarball(resolve(values.artifact)));
        process.stderr.write(`artifact ${uploaded.unchanged ? 'already uploaded' : 'uploaded'}: ${uploaded.bytes} bytes, sha256 ${uploaded.sha256}\n`);
        body.artifact = 'uploaded';
      } else {
        body.artifact = resolve(values.artifact);
      }
    }
    if (values['metric-rules'] !== undefined) body.metricRules = values['metric-rules'];
    if (values['analysis-load'] !== undefined) body.analysisLoad = values['analysis-load'];
    if (values['warmup-paths'] !== undefined) body.warmupPaths = values['warmup-paths'];
    if (values['no-mirror']) body.mirror = false;
    if (values['no-sequential']) body.sequential = false;
    const d = await withFlagNames(api.post<Deployment>('/api/deployments', body));
    if (!values.wait) {
      write(values.json, d, `deployment ${d.id}: ${d.strategy} of ${d.version} onto ${d.candidateColor} (stable ${d.stableVersion} on ${d.stableColor}); follow it with: changelens deployment ${d.id}\n`);
      return EXIT.ok;
    }
    return waitFor(api, d.id, values.json === true, timeoutSeconds);
  },

  async deployments(args) {
    const { values } = parse(args, { ...common, limit: { type: 'string' } });
    const limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CL_ERR_CLI_USAGE(`--limit: expected an integer 1-1000, got ${JSON.stringify(values.limit)}`);
    const { deployments } = await client(values).get<{ deployments: Deployment[] }>(`/api/deployments?limit=${limit}`);
    write(values.json, { deployments }, deployments.map((d) => `${d.id}  ${d.version.padEnd(14)} ${d.strategy.padEnd(9)} ${d.status.phase.padEnd(11)} ${d.startedAt}${d.status.reason ? `  ${d.status.reason}` : ''}`).join('\n') + '\n');
    return EXIT.ok;
  },

  async deployment(args) {
    const { values, positionals } = parse(args, common, true);
    if (positionals.length !== 1) throw new CL_ERR_CLI_USAGE('usage: changelens deployment <id> [--json]');
    const d = await client(values).get<Deployment & { verdicts: StoredVerdict[] }>(`/api/deployments/${encodeURIComponent(positionals[0]!)}`);
    write(values.json, d, describe(d) + d.verdicts.map((v) => `  #${v.seq} step ${v.stepIndex + 1} @${Math.round(v.weight * 100)}%  ${v.explanation}`).join('\n') + '\n');
    return EXIT.ok;
  },

  async releases(args) {
    const { values } = parse(args, common);
    const { releases } = await client(values).get<{ releases: Array<Release & { active: boolean; lastGood: boolean }> }>('/api/releases');
    write(values.json, { releases }, releases.map((r) => `${r.version.padEnd(16)} ${[r.active ? 'active' : '', r.lastGood ? 'last_good' : ''].filter(Boolean).join(',').padEnd(17)} ${r.artifact === 'builtin' ? 'builtin' : r.artifact}  ${Object.keys(r.env).length ? JSON.stringify(r.env) : ''}  ${r.createdAt}`).join('\n') + '\n');
    return EXIT.ok;
  },

  async audit(args) {
    const { values } = parse(args, { ...common, since: { type: 'string' } });
    const since = values.since ?? '24h';
    const { events } = await client(values).get<{ events: AuditEvent[] }>(`/api/audit?since=${encodeURIComponent(since)}`);
    write(values.json, { events }, events.map((e) => `${e.at}  ${e.eventType.padEnd(9)} ${(e.version ?? '').padEnd(14)} ${e.actor.padEnd(14)} ${e.success ? 'ok ' : 'ERR'} ${e.error ?? JSON.stringify(e.details)}`).join('\n') + '\n');
    return EXIT.ok;
  },

  async export(args) {
    const { values, positionals } = parse(args, { ...common, out: { type: 'string' } }, true);
    if (positionals.length !== 1) throw new CL_ERR_CLI_USAGE('usage: changelens export <deployment-id> [--out DIR] [--json]');
    const exported = await client(values).get<{ result: unknown; metrics: { total_buckets: number } }>(`/api/deployments/${encodeURIComponent(positionals[0]!)}/export`);
    if (values.out !== undefined) {
      mkdirSync(values.out, { recursive: true });
      writeFileSync(join(values.out, 'result.json'), JSON.stringify(exported.result, null, 2) + '\n');
      writeFileSync(join(values.out, 'metrics.json'), JSON.stringify(exported.metrics, null, 2) + '\n');
    }
    write(values.json, exported, values.out !== undefined ? `wrote ${join(values.out, 'result.json')} and ${join(values.out, 'metrics.json')} (${exported.metrics.total_buckets} buckets)\n` : JSON.stringify(exported, null, 2) + '\n');
    return EXIT.ok;
  },
};

for (const action of ['promote', 'rollback', 'pause', 'resume', 'abort'] as const) {
  rolloutCommands[action] = async (args) => {
    const { values, positionals } = parse(args, { ...common, reason: { type: 'string' } }, true);
    if (positionals.length > 0) throw new CL_ERR_CLI_USAGE(`usage: changelens ${action} [--reason TEXT] [--json] (it acts on the running deployment)`);
    if (values.reason !== undefined && action === 'promote') throw new CL_ERR_CLI_USAGE('--reason: not for promote');
    const d = await client(values).post<Deployment>(`/api/deployment/${action}`, values.reason === undefined ? {} : { reason: values.reason });
    write(values.json, d, describe(d));
    return EXIT.ok;
  };
}

/**
 * Polls the deployment until it is decided, printing each change: 0 promoted, 1 rolled back or
 * failed, 4 paused (a person must decide), aborted (the progress deadline, or an operator) or past
 * --timeout. Never waits forever on a deployment nobody judges.
 */
async function waitFor(api: ReturnType<typeof adminClient>, id: string, json: boolean, timeoutSeconds: number | undefined): Promise<number> {
  let last = '';
  let unreachableSince: number | null = null;
  const deadline = timeoutSeconds === undefined ? Infinity : Date.now() + timeoutSeconds * 1000;
  let seen: Deployment | undefined;
  for (;;) {
    if (Date.now() > deadline) {
      process.stderr.write(`gave up waiting after ${timeoutSeconds} s (--timeout); the deployment goes on: changelens deployment ${id}\n`);
      if (json && seen) write(true, seen, '');
      return EXIT.undecided;
    }
    let d: Deployment & { verdicts: StoredVerdict[] };
    try {
      d = await api.get<Deployment & { verdicts: StoredVerdict[] }>(`/api/deployments/${encodeURIComponent(id)}`);
      unreachableSince = null;
      seen = d;
    } catch (err) {
      // A proxy restarting (pm2 brings it back, and it takes the deployment over) is not the end.
      const transient = err instanceof CL_ERR_UNREACHABLE || (err instanceof ChangeLensError && err.statusCode >= 502);
      unreachableSince ??= Date.now();
      if (!transient || Date.now() - unreachableSince > 60_000) throw err;
      process.stderr.write(`${new Date().toISOString().slice(11, 19)} the appliance does not answer (${(err as Error).message}); still waiting\n`);
      await new Promise((r) => setTimeout(r, 1_000));
      continue;
    }
    const v = d.verdicts.at(-1);
    const line = `${d.status.phase} step ${d.status.stepIndex + 1}/${d.status.steps.length} weight ${weightOf(d)}%${v ? ` last window (${v.samples.candidate} candidate / ${v.samples.stable} stable requests) ${v.explanation}` : ''}`;
    if (line !== last) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
    last = line;
    if (isTerminal(d.status.phase) || d.status.phase === 'paused') {
      const failing = d.verdicts.filter((x) => x.verdict === 'fail').at(-1);
      const next = d.status.phase === 'paused' ? '  it waits for a person: changelens resume, promote or rollback\n' : '';
      write(json, d, `${describe(d)}${failing ? `  verdict: ${failing.explanation}\n` : ''}${next}`);
      switch (d.status.phase) {
        case 'promoted': return EXIT.ok;
        case 'rolled_back': case 'failed': return EXIT.failure;
        default: return EXIT.undecided; // paused, aborted
      }
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

function weightOf(d: Deployment): number {
  const { phase, steps, stepIndex } = d.status;
  return phase === 'promoted' ? 100 : phase === 'shifting' || phase === 'paused' ? steps[stepIndex]! : 0;
}

function describe(d: Deployment): string {
  return `deployment ${d.id}: ${d.strategy} of ${d.version} on ${d.candidateColor} is ${d.status.phase} (step ${d.status.stepIndex + 1}/${d.status.steps.length}, weight ${weightOf(d)}%)${d.status.reason ? `: ${d.status.reason}` : ''}\n`;
}

/** A directory is packed into a temporary .tar.gz for the upload; a .tar.gz goes as it is. */
async function asTarball(path: string): Promise<string> {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    throw new CL_ERR_CLI_USAGE(`--artifact ${path}: ${(err as Error).message}`);
  }
  if (!isDir) {
    if (!/\.(tar\.gz|tgz)$/.test(path)) throw new CL_ERR_CLI_USAGE(`--artifact ${path}: expected a directory or a .tar.gz`);
    return path;
  }
  const file = join(mkdtempSync(join(tmpdir(), 'changelens-artifact-')), 'artifact.tgz');
  const packed = spawnSync('tar', ['-czf', file, '--exclude=.git', '--exclude=node_modules/.cache', '-C', path, '.'], { encoding: 'utf8' });
  if (packed.status !== 0) throw new CL_ERR_CLI_USAGE(`--artifact ${path}: tar could not pack it: ${packed.stderr.trim()}`);
  return file;
}

/** The API names body fields (body/stepSeconds); the person typed flags (--step-seconds). */
async function withFlagNames<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const e = err as Error;
    for (const [flag, field] of Object.entries({ ...NUMERIC_FLAGS, steps: 'steps', strategy: 'strategy', 'metric-rules': 'metricRules', 'analysis-load': 'analysisLoad', 'warmup-paths': 'warmupPaths', 'no-mirror': 'mirror', artifact: 'artifact', set: 'env', version: 'version' })) {
      e.message = e.message.replace(new RegExp(`body/${field}\\b`, 'g'), flag === 'version' ? '<version>' : `--${flag}`);
    }
    throw e;
  }
}

/** The admin API of this machine's appliance, or of the one at --url / CHANGELENS_URL. */
function client(values: { config?: string | undefined; url?: string | undefined }) {
  return adminClient(loadConfig({ file: values.config }), { url: values.url });
}

function write(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text);
}

