#!/usr/bin/env node
// The changelens command: how operators and scripts drive the appliance. Every command validates
// its arguments (an unknown option is an error naming it) and has --json output for scripts.
import { parse } from './args.js';
import { loadConfig } from '../lib/config.js';
import type { ApplianceStatus, NotRunningStatus, RolloutSummary } from '../lib/contracts/status.js';
import type { Deployment } from '../rollout/index.js';
import { adminClient } from './admin-client.js';
import { ChangeLensError, CL_ERR_CLI_USAGE, CL_ERR_NOT_RUNNING, EXIT, exitCodeFor } from '../lib/errors.js';
import { packageRoot, packageVersion } from '../lib/package-root.js';
import { dataPaths } from '../lib/paths.js';
import { queryControl, runningMs, runUp } from '../supervisor/index.js';
import { formatStatus } from './format-status.js';
import { renderConfigReference } from '../lib/config-reference.js';
import { redactRules, redactUrl } from '../lib/redact.js';
import { estimateCost, formatCost, readPrices, readServiceResources } from './cost.js';
import { join } from 'node:path';
import { ROLLOUT_USAGE, rolloutCommands } from './rollout-commands.js';
import { BACKUP_USAGE, backupCommands } from './backup-commands.js';
import { REGRESSION_USAGE, regressionCommands } from './regression-commands.js';
import { BENCH_USAGE, benchCommands, DEMO_USAGE } from './bench-commands.js';

const USAGE = `changelens ${packageVersion}: one appliance that runs a small web system and guards every change

Usage:
  changelens up [--config FILE]            boot the appliance in the foreground (Ctrl-C / SIGTERM stops it)
  changelens status [--json] [--config FILE]
                                           processes, Postgres and Redis reachability, active colour, boot time
  changelens process start|stop api-blue|api-green [--set CHANGELENS_REGRESSION=…] [--json]
                                           start the idle colour, its API and its worker (waits until ready), with a
                                           release's settings, or stop it; "process stop worker-<colour>" stops its worker alone
  changelens cost [--json] [--days N] [--rc FILE] [--prices FILE]
                                           monthly CloudBase Run cost from cloudbaserc.json and observed instance-hours
  changelens config [--json] [--reference] the effective configuration (secrets redacted), or the reference of every setting
  changelens preview-url [--color blue|green] [--minutes 60] [--json]
                                           a link that lets whoever opens it reach a colour pinned (previews are never judged)
${ROLLOUT_USAGE}
${BACKUP_USAGE}
${REGRESSION_USAGE}
${BENCH_USAGE}
${DEMO_USAGE}
  changelens --help | --version

Configuration comes from environment variables (PORT, CHANGELENS_DATA_DIR, DATABASE_URL, REDIS_URL, …)
and an optional JSON file (--config or CHANGELENS_CONFIG); see README.md.
Exit codes: 0 ok (deploy --wait: promoted), 1 failure (rolled back), 2 bad usage or configuration,
3 not running or unreachable, 4 no verdict (paused, aborted, --timeout passed), 5 unauthorized.`;

type Command = (args: string[]) => Promise<number>;

const commands: Record<string, Command> = {
  async up(args) {
    const { values } = parse(args, { config: { type: 'string' } });
    return runUp({ configFile: values.config });
  },

  async status(args) {
    const { values } = parse(args, { json: { type: 'boolean' }, config: { type: 'string' } });
    const config = loadConfig({ file: values.config });
    const paths = dataPaths(config.dataDir);
    try {
      const status = await queryControl<ApplianceStatus>(paths.controlSocket, '/status', paths.root);
      if (status.phase === 'ready') status.rollout = await rolloutSummary(config);
      process.stdout.write(values.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
      return status.phase === 'ready' ? EXIT.ok : EXIT.failure;
    } catch (err) {
      if (!(err instanceof CL_ERR_NOT_RUNNING) || !values.json) throw err;
      const status: NotRunningStatus = { schemaVersion: 1, running: false, dataDir: paths.root };
      process.stdout.write(JSON.stringify(status, null, 2) + '\n');
      return EXIT.notRunning;
    }
  },
};

/** The active release and the running deployment, from the admin API; null when it does not answer. */
async function rolloutSummary(config: ReturnType<typeof loadConfig>): Promise<RolloutSummary | null> {
  try {
    const s = await adminClient(config, { url: '', timeoutMs: 3_000 }).get<{ active: RolloutSummary['active']; routing: { candidateWeight: number }; deployment: (Deployment & { lastVerdict: string | null; lastExplanation: string | null }) | null; fleet?: RolloutSummary['fleet'] }>('/api/status');
    const d = s.deployment;
    return {
      ...(s.fleet ? { fleet: s.fleet } : {}),
      active: s.active,
      deployment: d ? { id: d.id, version: d.version, strategy: d.strategy, phase: d.status.phase, step: d.status.stepIndex + 1, steps: d.status.steps.length, weight: s.routing.candidateWeight, lastVerdict: d.lastVerdict, lastExplanation: d.lastExplanation } : null,
    };
  } catch {
    return null;
  }
}

/** `changelens cost [--json] [--days N] [--rc FILE] [--prices FILE]`: monthly CloudBase Run cost. */
commands.cost = async (args) => {
  const { values } = parse(args, { json: { type: 'boolean' }, days: { type: 'string' }, rc: { type: 'string' }, prices: { type: 'string' }, config: { type: 'string' } });
  const days = values.days === undefined ? 30 : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 366) throw new CL_ERR_CLI_USAGE(`--days: expected an integer 1-366, got ${JSON.stringify(values.days)}`);
  const paths = dataPaths(loadConfig({ file: values.config }).dataDir);
  let estimate;
  try {
    const resources = readServiceResources(values.rc ?? join(packageRoot, 'cloudbaserc.json'));
    const { ms, starts } = runningMs(paths.runLog, new Date(Date.now() - days * 86_400_000));
    estimate = estimateCost(resources, readPrices(values.prices), { days, ms, starts });
  } catch (err) {
    throw new CL_ERR_CLI_USAGE((err as Error).message);
  }
  process.stdout.write(values.json ? JSON.stringify(estimate, null, 2) + '\n' : formatCost(estimate));
  return EXIT.ok;
};

/** `changelens config [--json] [--reference]`: the effective configuration (secrets redacted), or the reference. */
commands.config = async (args) => {
  const { values } = parse(args, { json: { type: 'boolean' }, reference: { type: 'boolean' }, config: { type: 'string' } });
  if (values.reference) {
    process.stdout.write(renderConfigReference());
    return EXIT.ok;
  }
  const config = loadConfig({ file: values.config });
  const shown = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, shownValue(k, v)]));
  process.stdout.write(values.json ? JSON.stringify(shown, null, 2) + '\n' : Object.entries(shown).map(([k, v]) => `${k.padEnd(20)} ${String(v)}`).join('\n') + '\n');
  return EXIT.ok;
};
const SECRET_KEYS = new Set(['adminToken', 'pgPassword', 'redisPassword', 'backupKey', 'databaseUrl', 'redisUrl', 'appControlToken', 'releaseSecretsKey', 'hookCommand']);
/** A setting as `config` shows it: secrets redacted, URLs down to scheme and host, rules without their hooks' secrets. */
function shownValue(key: string, value: unknown): unknown {
  if (value === undefined) return value;
  if (SECRET_KEYS.has(key)) return '[redacted]';
  if (key === 'hookUrls' || key === 'otlpEndpoint') return String(value).split(',').map((u) => redactUrl(u.trim())).join(',');
  if (key === 'monitorRules') return redactRules(String(value));
  return value;
}

/** `changelens preview-url [--color C] [--minutes N] [--json]`: a link that lets its holder pin requests to a colour (a preview). */
commands['preview-url'] = async (args) => {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, config: { type: 'string' }, url: { type: 'string' }, color: { type: 'string' }, minutes: { type: 'string' } }, true);
  if (positionals.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens preview-url [--color blue|green] [--minutes 60] [--json]');
  if (values.color !== undefined && values.color !== 'blue' && values.color !== 'green') throw new CL_ERR_CLI_USAGE(`--color: expected blue or green, got ${JSON.stringify(values.color)}`);
  const minutes = values.minutes === undefined ? 60 : Number(values.minutes);
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 10_080) throw new CL_ERR_CLI_USAGE(`--minutes: expected an integer 1-10080, got ${JSON.stringify(values.minutes)}`);
  const client = adminClient(loadConfig({ file: values.config }), { url: values.url });
  const issued = await client.post<{ credential: string; expiresAt: string; url: string }>('/api/previews', { minutes, ...(values.color ? { color: values.color } : {}) });
  const link = `${client.base.replace(/\/_changelens$/, '')}${issued.url}`;
  process.stdout.write(values.json ? JSON.stringify({ ...issued, url: link }, null, 2) + '\n'
    : `${link}\n(valid until ${issued.expiresAt}; scripts send x-changelens-preview: ${issued.credential} with x-changelens-color)\n`);
  return EXIT.ok;
};

/** `changelens process start|stop <name>`: asks the running supervisor. */
commands.process = async (args) => {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, config: { type: 'string' }, set: { type: 'string', multiple: true } }, true);
  const [action, name, ...extra] = positionals;
  if ((action !== 'start' && action !== 'stop') || name === undefined || extra.length > 0) {
    throw new CL_ERR_CLI_USAGE('usage: changelens process start|stop api-blue|api-green [--set KEY=VALUE]… [--json], or process stop worker-blue|worker-green');
  }
  const sets = values.set ?? [];
  if (action === 'stop' && sets.length > 0) throw new CL_ERR_CLI_USAGE('--set: only with process start');
  for (const pair of sets) if (!/^[A-Z_]+=/.test(pair)) throw new CL_ERR_CLI_USAGE(`--set ${pair}: expected KEY=VALUE`);
  const query = sets.length > 0 ? `?${sets.map((p) => `set=${encodeURIComponent(p)}`).join('&')}` : '';
  const paths = dataPaths(loadConfig({ file: values.config }).dataDir);
  // Starting waits for the readiness probe, which may take up to CHANGELENS_READY_TIMEOUT_MS.
  const change = await queryControl<{ name: string; action: string; ms: number }>(paths.controlSocket, `/processes/${encodeURIComponent(name)}/${action}${query}`, paths.root, { method: 'POST', timeoutMs: 660_000 });
  process.stdout.write(values.json ? JSON.stringify(change, null, 2) + '\n' : `${change.name}: ${change.action === 'unchanged' ? `already ${action === 'start' ? 'running' : 'stopped'}` : `${change.action} in ${change.ms} ms`}\n`);
  return EXIT.ok;
};


async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE + '\n');
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(packageVersion + '\n');
    return EXIT.ok;
  }
  const command = commands[name] ?? rolloutCommands[name] ?? backupCommands[name] ?? regressionCommands[name] ?? benchCommands[name];
  if (!command) throw new CL_ERR_CLI_USAGE(`unknown command "${name}" (expected one of: ${[...Object.keys(commands), ...Object.keys(rolloutCommands), ...Object.keys(backupCommands), ...Object.keys(regressionCommands), ...Object.keys(benchCommands)].join(', ')})`);
  return command(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ChangeLensError) {
      process.stderr.write(`${err.code}: ${err.message}\nhint: ${err.hint}\n`);
    } else {
      process.stderr.write(`CL_ERR_INTERNAL: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(exitCodeFor(err));
  },
);
