// The rollout commands: deploy (optionally waiting for the verdict), promote (all the way or a
// step), rollback, pause, resume, abort, undo, and the views: deployments, deployment, releases,
// audit, export. Thin clients of the admin API; each has --json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { ConfigKey } from '../lib/config.js';
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
import type { AuditEvent } from '../lib/audit.js';
import type { Deployment, Release, StoredVerdict } from '../rollout/index.js';
import type { AdminClient } from './admin-client.js';
import { apiClient, collect, examples, numberIn, pairs, settingOption, withApi, write, type ApiOptions } from './options.js';
import type { Act } from './command-tree.js';
import { describe, waitFor } from './watch-commands.js';
import { atGate } from '../rollout/state-machine.js';

/** CLI flag → deploy body field, each a setting of the config table whose range it takes. */
const SETTING_FLAGS = {
  'step-seconds': 'stepSeconds', 'window-seconds': 'windowSeconds', 'p99-ratio': 'p99Ratio', 'max-error-rate': 'maxErrorRate',
  'max-p95-ms': 'maxP95Ms', 'max-p99-ms': 'maxP99Ms', 'min-samples': 'minSamples', 'failures-to-rollback': 'failuresToRollback',
  'keep-warm-seconds': 'keepWarmSeconds', 'inspect-seconds': 'inspectSeconds', 'preview-seconds': 'previewSeconds',
  'trip-consecutive-5xx': 'tripConsecutive5xx', 'trip-consecutive-job-failures': 'tripConsecutiveJobFailures', 'job-min-samples': 'jobMinSamples', 'p99-min-delta-ms': 'p99MinDeltaMs', 'progress-deadline': 'progressDeadlineSeconds',
  'warmup-seconds': 'warmupSeconds', 'mirror-percent': 'mirrorPercent', 'metric-rules': 'metricRules', 'analysis-load': 'analysisLoad', 'warmup-paths': 'warmupPaths',
} as const satisfies Record<string, ConfigKey>;

/** The deploy body's own field for a flag (commander names options in camelCase). */
const camel = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

interface DeployOptions extends ApiOptions {
  strategy?: string; steps?: string; set?: string[]; secret?: string[]; artifact?: string; wait?: boolean; timeout?: number; awaitApproval?: boolean; throughGates?: boolean;
  mirror?: boolean; sequential?: boolean; [flag: string]: unknown;
}

export function registerRolloutCommands(program: Command, act: Act): void {
  const deploy = withApi(program.command('deploy').argument('<version>', 'the release\'s version (a name of letters, digits, . _ -)')
    .description('roll a release out on the idle colour: warm it up, shift traffic in steps, judge every window, promote or roll back by itself')
    .addOption(new Option('-s, --strategy <name>', 'canary (steps), bluegreen (switch, then judge) or direct (no analysis)').choices(['canary', 'bluegreen', 'direct']))
    .addOption(settingOption('--steps <weights>', 'canarySteps'))
    .option('--set <KEY=VALUE>', 'a setting of the release (its environment), e.g. CHANGELENS_REGRESSION=cpu:50 (repeatable)', collect)
    .option('--secret <KEY=VALUE>', 'a secret setting: sealed on arrival, shown nowhere after (repeatable)', collect)
    .option('--artifact <path>', 'the release\'s code: a directory or a .tar.gz (uploaded when --url names a remote appliance)'));
  for (const [flag, key] of Object.entries(SETTING_FLAGS)) deploy.addOption(settingOption(`--${flag}`, key));
  deploy.option('--no-sequential', 'no early verdicts from the sequential tests: windows and fast trips only')
    .option('--no-mirror', 'no copies of live requests to the candidate (synthetic warm-up GETs only)')
    .option('--await-approval', 'hold before the final step (blue/green and direct: before the switch) until approved: changelens promote --step, the dashboard, or the gate webhook (CHANGELENS_GATE_URL)')
    .option('-w, --wait', 'follow the deployment until it is decided (exit codes below)')
    .option('--through-gates', 'with --wait: keep waiting while it is held at a gate (for the gate webhook or a person)')
    .addOption(new Option('-t, --timeout <seconds>', 'with --wait: give up waiting after this long (exit 4; the deployment goes on)').argParser(numberIn(1, 604_800, true)));
  examples(deploy, [
    'changelens deploy v2 --wait',
    'changelens deploy v2 --strategy canary --steps 10,50,100 --step-seconds 60 --wait --timeout 900',
    'changelens deploy v2 --steps 5,25,pause,100      # holds before 100 %: changelens promote --step approves',
    'changelens deploy v2 --strategy bluegreen --await-approval',
    'changelens deploy v2 --artifact ./build --set FEATURE_X=1 --secret API_KEY=… --url https://app.example.com',
  ]);
  deploy.addHelpText('after', `\nWith --wait: exit 0 promoted, 1 rolled back or failed, 4 paused (a gate too, without --through-gates),\naborted or --timeout passed, 3 unreachable, 5 unauthorized, 2 bad usage. Without: 0 once the deployment is recorded.\n`);
  deploy.action(act(async (version: string, o: DeployOptions) => {
    if (o.timeout !== undefined && !o.wait) throw new CL_ERR_CLI_USAGE('--timeout: only with --wait');
    if (o.throughGates && !o.wait) throw new CL_ERR_CLI_USAGE('--through-gates: only with --wait');
    const body: Record<string, unknown> = { version };
    if (o.strategy !== undefined) body.strategy = o.strategy;
    if (o.steps !== undefined) {
      const steps = o.steps.split(',').map((x) => x.trim());
      if (!steps.every((x) => /^\d+$/.test(x) || x === 'pause')) throw new CL_ERR_CLI_USAGE(`--steps: expected percentages like 5,25,50,100 (a "pause" before a weight holds it for approval), got ${JSON.stringify(o.steps)}`);
      body.steps = steps.map((x) => (x === 'pause' ? x : Number(x)));
    }
    for (const flag of Object.keys(SETTING_FLAGS) as (keyof typeof SETTING_FLAGS)[]) {
      const value = o[camel(flag)];
      if (value !== undefined) body[SETTING_FLAGS[flag]] = value;
    }
    if (o.set) body.env = pairs('--set', o.set);
    // Sealed by the appliance on arrival; shown nowhere after (not in releases, audit or logs).
    if (o.secret) body.secrets = pairs('--secret', o.secret, false);
    if (o.awaitApproval) body.awaitApproval = true;
    if (o.mirror === false) body.mirror = false;
    if (o.sequential === false) body.sequential = false;
    const api = apiClient(o);
    if (o.artifact !== undefined) {
      // A remote appliance cannot read this machine's files: the artifact travels with the request.
      if (api.remote) {
        const uploaded = await api.upload<{ sha256: string; bytes: number; unchanged: boolean }>(version, await asTarball(resolve(o.artifact)));
        process.stderr.write(`artifact ${uploaded.unchanged ? 'already uploaded' : 'uploaded'}: ${uploaded.bytes} bytes, sha256 ${uploaded.sha256}\n`);
        body.artifact = 'uploaded';
      } else {
        body.artifact = resolve(o.artifact);
      }
    }
    const d = await withFlagNames(api.post<Deployment>('/api/deployments', body));
    if (!o.wait) {
      write(o.json, d, `deployment ${d.id}: ${d.strategy} of ${d.version} onto ${d.candidateColor} (stable ${d.stableVersion} on ${d.stableColor}); follow it with: changelens watch ${d.id}\n`);
      return EXIT.ok;
    }
    return waitFor(api, d.id, o.json === true, o.timeout, o.throughGates);
  }));

  const promote = withApi(program.command('promote').description('promote the running deployment: all the way, or with --step to its next step')
    .option('--step', 'only to the next step (the last step promotes); approves a pause')
    .option('-r, --reason <text>', 'why, for the audit log (with --step)'));
  examples(promote, ['changelens promote', 'changelens promote --step --reason "checked the dashboards"']);
  promote.action(act(async (o: ApiOptions & { step?: boolean; reason?: string }) => {
    if (o.reason !== undefined && !o.step) throw new CL_ERR_CLI_USAGE('--reason: only with --step (a full promotion records who did it)');
    const api = apiClient(o);
    let seen = {};
    if (o.step) {
      // From the step it is at now: one that moved meanwhile (the gate webhook, a person) is not moved again.
      const { deployment: now } = await api.get<{ deployment: Deployment | null }>('/api/status');
      if (now) seen = { deployment: now.id, fromStep: now.status.stepIndex + 1, atGate: atGate(now.status) };
    }
    const d = await api.post<Deployment>(`/api/deployment/${o.step ? 'step' : 'promote'}`, { ...(o.reason === undefined ? {} : { reason: o.reason }), ...seen });
    write(o.json, d, describe(d));
    return EXIT.ok;
  }));

  const ACTIONS = {
    rollback: 'send all traffic back to the stable colour and end the deployment as rolled back',
    pause: 'hold the deployment at its step (windows go on being judged; the progress deadline stops)',
    resume: 'go on from a pause; the step gets its whole analysis period again',
    abort: 'end the deployment: traffic back to the stable colour, the candidate kept for inspection',
  } as const;
  for (const [action, what] of Object.entries(ACTIONS)) {
    const cmd = withApi(program.command(action).description(`${what} (acts on the running deployment)`));
    cmd.option('-r, --reason <text>', action === 'resume' ? 'why (1-500 characters; accepted for scripts, not recorded)' : 'why, for the audit log and the deployment (1-500 characters)');
    examples(cmd, [`changelens ${action}${action === 'resume' ? '' : ' --reason "p99 looks wrong on the dashboard"'}`]);
    cmd.action(act(async (o: ApiOptions & { reason?: string }) => {
      const d = await apiClient(o).post<Deployment>(`/api/deployment/${action}`, o.reason === undefined ? {} : { reason: o.reason });
      write(o.json, d, describe(d));
      return EXIT.ok;
    }));
  }

  const undo = withApi(program.command('undo').description('undo the last change: roll the running deployment back, or, when none runs, go back to the release before the active one (a direct deployment of it, instant while its colour is still warm)')
    .option('--to <version>', 'another earlier release instead (changelens releases lists them)')
    .option('-w, --wait', 'wait until it is active')
    .addOption(new Option('-t, --timeout <seconds>', 'with --wait: give up waiting after this long (exit 4)').argParser(numberIn(1, 604_800, true))));
  examples(undo, ['changelens undo --wait', 'changelens undo --to v1.4.2']);
  undo.addHelpText('after', '\nWith CHANGELENS_BACKUP_BEFORE_DEPLOY=1, going back to an earlier release takes its Postgres backup first.\n');
  undo.action(act(async (o: ApiOptions & { to?: string; wait?: boolean; timeout?: number }) => {
    if (o.timeout !== undefined && !o.wait) throw new CL_ERR_CLI_USAGE('--timeout: only with --wait');
    const api = apiClient(o);
    const { deployment: running } = await api.get<{ deployment: Deployment | null }>('/api/status');
    if (running) {
      // The change being made now is the one to undo.
      if (o.to !== undefined) throw new CL_ERR_CLI_USAGE(`--to: deployment ${running.id} of ${running.version} is running; undo rolls it back first`);
      const d = await api.post<Deployment>('/api/deployment/rollback', { reason: 'undo' });
      write(o.json, d, `undo: ${describe(d)}`);
      return EXIT.ok;
    }
    const version = o.to ?? await previousRelease(api);
    const d = await api.post<Deployment>('/api/deployments', { version, strategy: 'direct', warmupSeconds: 0 });
    if (!o.wait) {
      write(o.json, d, `undo: ${d.version} goes back onto ${d.candidateColor} (from ${d.stableVersion}), deployment ${d.id}\n`);
      return EXIT.ok;
    }
    return waitFor(api, d.id, o.json === true, o.timeout);
  }));

  const deployments = withApi(program.command('deployments').description('recent deployments, newest first')
    .addOption(new Option('-n, --limit <n>', 'how many (1-1000)').argParser(numberIn(1, 1000, true)).default(20)));
  examples(deployments, ['changelens deployments -n 5', 'changelens deployments --json | jq -r \'.deployments[0].id\'']);
  deployments.action(act(async (o: ApiOptions & { limit: number }) => {
    const { deployments: list } = await apiClient(o).get<{ deployments: Deployment[] }>(`/api/deployments?limit=${o.limit}`);
    write(o.json, { deployments: list }, list.map((d) => `${d.id}  ${d.version.padEnd(14)} ${d.strategy.padEnd(9)} ${d.status.phase.padEnd(11)} ${d.startedAt}${d.status.reason ? `  ${d.status.reason}` : ''}`).join('\n') + '\n');
    return EXIT.ok;
  }));

  const deployment = withApi(program.command('deployment').argument('<id>', 'a deployment id (changelens deployments lists them)')
    .description('one deployment: its phase, step and every judged window with its explanation'));
  examples(deployment, ['changelens deployment dep_…', 'changelens deployment dep_… --json | jq \'.verdicts[-1]\'']);
  deployment.action(act(async (id: string, o: ApiOptions) => {
    const d = await apiClient(o).get<Deployment & { verdicts: StoredVerdict[] }>(`/api/deployments/${encodeURIComponent(id)}`);
    write(o.json, d, describe(d) + d.verdicts.map((v) => `  #${v.seq} step ${v.stepIndex + 1} @${Math.round(v.weight * 100)}%  ${v.explanation}`).join('\n') + '\n');
    return EXIT.ok;
  }));

  const releases = withApi(program.command('releases').description('releases, and which is active and last_good'));
  examples(releases, ['changelens releases', 'changelens releases --url https://app.example.com']);
  releases.action(act(async (o: ApiOptions) => {
      const { releases } = await apiClient(o).get<{ releases: Array<Release & { active: boolean; lastGood: boolean }> }>('/api/releases');
      write(o.json, { releases }, releases.map((r) => `${r.version.padEnd(16)} ${[r.active ? 'active' : '', r.lastGood ? 'last_good' : ''].filter(Boolean).join(',').padEnd(17)} ${r.artifact === 'builtin' ? 'builtin' : r.artifact}  ${Object.keys(r.env).length ? JSON.stringify(r.env) : ''}  ${r.createdAt}`).join('\n') + '\n');
      return EXIT.ok;
    }));

  const audit = withApi(program.command('audit').description('the audit log: every deploy, verdict, action and change, who and when')
    .option('--since <age>', 'how far back, e.g. 30m, 24h, 7d', '24h'));
  examples(audit, ['changelens audit --since 1h', 'changelens audit --json | jq \'.events[] | select(.success == false)\'']);
  audit.action(act(async (o: ApiOptions & { since: string }) => {
    const { events } = await apiClient(o).get<{ events: AuditEvent[] }>(`/api/audit?since=${encodeURIComponent(o.since)}`);
    write(o.json, { events }, events.map((e) => `${e.at}  ${e.eventType.padEnd(9)} ${(e.version ?? '').padEnd(14)} ${e.actor.padEnd(14)} ${e.success ? 'ok ' : 'ERR'} ${e.error ?? JSON.stringify(e.details)}`).join('\n') + '\n');
    return EXIT.ok;
  }));

  const exportCmd = withApi(program.command('export').argument('<id>', 'a deployment id')
    .description('a deployment\'s result and 5-second bucket metrics (result.json, metrics.json)')
    .option('-o, --out <dir>', 'write the two files here (default: print the JSON)'));
  examples(exportCmd, ['changelens export dep_… --out ./evidence']);
  exportCmd.action(act(async (id: string, o: ApiOptions & { out?: string }) => {
    const exported = await apiClient(o).get<{ result: unknown; metrics: { total_buckets: number } }>(`/api/deployments/${encodeURIComponent(id)}/export`);
    if (o.out !== undefined) {
      mkdirSync(o.out, { recursive: true });
      writeFileSync(join(o.out, 'result.json'), JSON.stringify(exported.result, null, 2) + '\n');
      writeFileSync(join(o.out, 'metrics.json'), JSON.stringify(exported.metrics, null, 2) + '\n');
    }
    write(o.json, exported, o.out !== undefined ? `wrote ${join(o.out, 'result.json')} and ${join(o.out, 'metrics.json')} (${exported.metrics.total_buckets} buckets)\n` : JSON.stringify(exported, null, 2) + '\n');
    return EXIT.ok;
  }));
}

/** The release the active one replaced: the stable version of the deployment that promoted it. */
async function previousRelease(api: AdminClient): Promise<string> {
  const [{ pointers }, { deployments }] = await Promise.all([
    api.get<{ pointers: { active: { version: string } | null } }>('/api/releases'),
    api.get<{ deployments: Deployment[] }>('/api/deployments?limit=200'),
  ]);
  const active = pointers.active?.version;
  const promoted = deployments.find((d) => d.status.phase === 'promoted' && d.version === active);
  if (!active || !promoted || promoted.stableVersion === active) throw new CL_ERR_CLI_USAGE(`nothing to undo: no promotion of the active release${active ? ` ${active}` : ''} among the last 200 deployments; name one with --to VERSION`);
  return promoted.stableVersion;
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
    for (const [flag, field] of Object.entries({ ...SETTING_FLAGS, steps: 'steps', strategy: 'strategy', 'no-mirror': 'mirror', 'no-sequential': 'sequential', 'await-approval': 'awaitApproval', artifact: 'artifact', set: 'env', version: 'version' })) {
      e.message = e.message.replace(new RegExp(`body/${field}\\b`, 'g'), flag === 'version' ? '<version>' : `--${flag}`);
    }
    throw e;
  }
}
