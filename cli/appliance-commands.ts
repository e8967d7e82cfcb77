// The appliance's own commands: up, status, process, config, cost, preview-url and version. status
// and process ask the running supervisor over its control socket; preview-url asks the admin API.
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { loadConfig, type Config } from '../lib/config.js';
import type { ApplianceStatus, NotRunningStatus, RolloutSummary } from '../lib/contracts/status.js';
import { renderConfigReference } from '../lib/config-reference.js';
import { CL_ERR_CLI_USAGE, CL_ERR_NOT_RUNNING, EXIT } from '../lib/errors.js';
import { packageRoot, packageVersion } from '../lib/package-root.js';
import { dataPaths } from '../lib/paths.js';
import { redactRules, redactUrl } from '../lib/redact.js';
import { parseNotifyTargets, shownTarget } from '../lib/contracts/notify-targets.js';
import type { Deployment } from '../rollout/index.js';
import { queryControl, runningMs, runUp } from '../supervisor/index.js';
import { adminClient } from './admin-client.js';
import { estimateCost, formatCost, readPrices, readServiceResources } from './cost.js';
import { formatStatus } from './format-status.js';
import { apiClient, collect, examples, numberIn, withApi, withConfig, withJson, write, type ApiOptions, type ConfigOptions } from './options.js';
import type { Act } from './command-tree.js';
import { withProgress } from './progress.js';

export function registerApplianceCommands(program: Command, act: Act): void {
  const up = withConfig(program.command('up').description('boot the appliance in the foreground: Postgres, Redis, the API colours, the worker and the proxy under pm2 (Ctrl-C or SIGTERM stops it, in reverse order)'));
  examples(up, ['changelens up', 'PORT=9090 CHANGELENS_DATA_DIR=/srv/changelens changelens up', 'DATABASE_URL=postgres://… REDIS_URL=redis://… changelens up    # external mode; a fleet']);
  up.action(act(async (o: ConfigOptions) => runUp({ configFile: o.config })));

  const status = withJson(withConfig(program.command('status').description('processes, Postgres and Redis, the active colour and release, the running deployment, backups, the fleet')));
  examples(status, ['changelens status', 'changelens status --json | jq .processes']);
  status.addHelpText('after', '\nExits 0 when the appliance is ready, 1 while it boots or stops, 3 when it is not running.\n');
  status.action(act(async (o: ConfigOptions & { json?: boolean }) => {
    const config = loadConfig({ file: o.config });
    const paths = dataPaths(config.dataDir);
    try {
      const s = await queryControl<ApplianceStatus>(paths.controlSocket, '/status', paths.root);
      if (s.phase === 'ready') s.rollout = await rolloutSummary(config);
      write(o.json, s, formatStatus(s));
      return s.phase === 'ready' ? EXIT.ok : EXIT.failure;
    } catch (err) {
      if (!(err instanceof CL_ERR_NOT_RUNNING) || !o.json) throw err;
      const notRunning: NotRunningStatus = { schemaVersion: 1, running: false, dataDir: paths.root };
      write(true, notRunning, '');
      return EXIT.notRunning;
    }
  }));

  const processCmd = program.command('process').description('start or stop a colour\'s API and worker on the running appliance');
  const start = withJson(withConfig(processCmd.command('start').argument('<name>', 'api-blue or api-green (its worker starts with it)')
    .description('start the idle colour, its API and its worker, with a release\'s settings; waits until they are ready')
    .option('--set <KEY=VALUE>', 'a release setting, e.g. CHANGELENS_REGRESSION=cpu:50 (repeatable)', collect)));
  examples(start, ['changelens process start api-green', 'changelens process start api-green --set CHANGELENS_REGRESSION=errors:0.1']);
  start.action(act(async (name: string, o: ConfigOptions & { json?: boolean; set?: string[] }) => changeProcess('start', name, o)));
  const stop = withJson(withConfig(processCmd.command('stop').argument('<name>', 'api-blue or api-green (and its worker), or worker-blue / worker-green alone')
    .description('stop a colour\'s API and worker, or a worker alone')));
  examples(stop, ['changelens process stop api-green', 'changelens process stop worker-green']);
  stop.action(act(async (name: string, o: ConfigOptions & { json?: boolean }) => changeProcess('stop', name, o)));

  const cost = withJson(withConfig(program.command('cost').description('monthly CloudBase Run cost from cloudbaserc.json and the instance-hours this machine observed')
    .addOption(new Option('--days <n>', 'observed days to extrapolate from (1-366)').argParser(numberIn(1, 366, true)).default(30))
    .option('--rc <file>', 'the cloudbaserc.json to price (default: the one shipped)')
    .option('--prices <file>', 'a JSON file of prices to use instead of the built-in list')));
  examples(cost, ['changelens cost', 'changelens cost --days 7 --json']);
  cost.action(act(async (o: ConfigOptions & { json?: boolean; days: number; rc?: string; prices?: string }) => {
    const paths = dataPaths(loadConfig({ file: o.config }).dataDir);
    let estimate;
    try {
      const resources = readServiceResources(o.rc ?? join(packageRoot, 'cloudbaserc.json'));
      const { ms, starts } = runningMs(paths.runLog, new Date(Date.now() - o.days * 86_400_000));
      estimate = estimateCost(resources, readPrices(o.prices), { days: o.days, ms, starts });
    } catch (err) {
      throw new CL_ERR_CLI_USAGE((err as Error).message);
    }
    write(o.json, estimate, formatCost(estimate));
    return EXIT.ok;
  }));

  const config = withJson(withConfig(program.command('config').description('the effective configuration (secrets redacted), or the reference of every setting')
    .option('--reference', 'every setting: its variable, range, default and meaning (Markdown)')));
  examples(config, ['changelens config', 'changelens config --reference | less']);
  config.action(act(async (o: ConfigOptions & { json?: boolean; reference?: boolean }) => {
    if (o.reference) {
      process.stdout.write(renderConfigReference());
      return EXIT.ok;
    }
    const shown = Object.fromEntries(Object.entries(loadConfig({ file: o.config })).map(([k, v]) => [k, shownValue(k, v)]));
    write(o.json, shown, Object.entries(shown).map(([k, v]) => `${k.padEnd(20)} ${String(v)}`).join('\n') + '\n');
    return EXIT.ok;
  }));

  const preview = withApi(program.command('preview-url').description('a link that lets whoever opens it reach a colour pinned (previews are never judged)')
    .addOption(new Option('--color <colour>', 'the colour the link pins (default: none; its holder picks one with the x-changelens-color header)').choices(['blue', 'green']))
    .addOption(new Option('--minutes <n>', 'how long the link is valid (1-10080)').argParser(numberIn(1, 10_080, true)).default(60)));
  examples(preview, ['changelens preview-url --color green --minutes 30']);
  preview.action(act(async (o: ApiOptions & { color?: string; minutes: number }) => {
    const client = apiClient(o);
    const issued = await client.post<{ credential: string; expiresAt: string; url: string }>('/api/previews', { minutes: o.minutes, ...(o.color ? { color: o.color } : {}) });
    const link = `${client.base.replace(/\/_changelens$/, '')}${issued.url}`;
    write(o.json, { ...issued, url: link }, `${link}\n(valid until ${issued.expiresAt}; scripts send x-changelens-preview: ${issued.credential} with x-changelens-color)\n`);
    return EXIT.ok;
  }));

  const version = withJson(withConfig(program.command('version').description('this command\'s version, Node\'s, and the running appliance\'s when one answers')));
  examples(version, ['changelens version', 'changelens version --json | jq -r .appliance.version']);
  version.action(act(async (o: ConfigOptions & { json?: boolean }) => {
    let appliance: { version: string; phase: string } | null = null;
    try {
      const paths = dataPaths(loadConfig({ file: o.config }).dataDir);
      const s = await queryControl<ApplianceStatus>(paths.controlSocket, '/status', paths.root, { timeoutMs: 2_000 });
      appliance = { version: s.version, phase: s.phase };
    } catch {
      // Not running here (or no configuration): the command's own version is still the answer.
    }
    const value = { version: packageVersion, node: process.version, platform: `${process.platform}-${process.arch}`, appliance };
    write(o.json, value, `changelens ${packageVersion} (node ${process.version}, ${value.platform})\nappliance: ${appliance ? `${appliance.version}, ${appliance.phase}` : 'not running here'}\n`);
    return EXIT.ok;
  }));
}

/** `process start|stop <name>`: asks the running supervisor; starting waits for the readiness probe. */
async function changeProcess(action: 'start' | 'stop', name: string, o: ConfigOptions & { json?: boolean; set?: string[] }): Promise<number> {
  const sets = o.set ?? [];
  for (const pair of sets) if (!/^[A-Z_]+=/.test(pair)) throw new CL_ERR_CLI_USAGE(`--set ${pair}: expected KEY=VALUE`);
  const query = sets.length > 0 ? `?${sets.map((p) => `set=${encodeURIComponent(p)}`).join('&')}` : '';
  const paths = dataPaths(loadConfig({ file: o.config }).dataDir);
  // Starting waits for the readiness probe, which may take up to CHANGELENS_READY_TIMEOUT_MS.
  const change = await withProgress(`${action === 'start' ? 'starting' : 'stopping'} ${name}`, queryControl<{ name: string; action: string; ms: number }>(paths.controlSocket, `/processes/${encodeURIComponent(name)}/${action}${query}`, paths.root, { method: 'POST', timeoutMs: 660_000 }));
  write(o.json, change, `${change.name}: ${change.action === 'unchanged' ? `already ${action === 'start' ? 'running' : 'stopped'}` : `${change.action} in ${change.ms} ms`}\n`);
  return EXIT.ok;
}

/** The active release and the running deployment, from the admin API; null when it does not answer. */
async function rolloutSummary(config: Config): Promise<RolloutSummary | null> {
  try {
    const s = await adminClient(config, { url: '', timeoutMs: 3_000 }).get<{ active: RolloutSummary['active']; routing: { candidateWeight: number }; deployment: (Deployment & { lastVerdict: string | null; lastExplanation: string | null }) | null; fleet?: RolloutSummary['fleet']; notifications?: RolloutSummary['notifications'] }>('/api/status');
    const d = s.deployment;
    return {
      ...(s.fleet ? { fleet: s.fleet } : {}),
      ...(s.notifications ? { notifications: s.notifications } : {}),
      active: s.active,
      deployment: d ? { id: d.id, version: d.version, strategy: d.strategy, phase: d.status.phase, step: d.status.stepIndex + 1, steps: d.status.steps.length, weight: s.routing.candidateWeight, lastVerdict: d.lastVerdict, lastExplanation: d.lastExplanation } : null,
    };
  } catch {
    return null;
  }
}

const SECRET_KEYS = new Set(['adminToken', 'pgPassword', 'redisPassword', 'backupKey', 'databaseUrl', 'redisUrl', 'appControlToken', 'releaseSecretsKey', 'hookCommand']);
/** A setting as `config` shows it: secrets redacted, URLs down to scheme and host, rules without their hooks' secrets. */
function shownValue(key: string, value: unknown): unknown {
  if (value === undefined) return value;
  if (SECRET_KEYS.has(key)) return '[redacted]';
  if (key === 'hookUrls' || key === 'gateUrl' || key === 'otlpEndpoint') return String(value).split(',').map((u) => redactUrl(u.trim())).join(',');
  if (key === 'monitorRules') return redactRules(String(value));
  if (key === 'notify') {
    const targets = parseNotifyTargets(String(value));
    return Array.isArray(targets) ? targets.map(shownTarget).join(', ') : '[redacted]';
  }
  return value;
}
