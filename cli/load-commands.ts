// `changelens bench coordinator|worker|locust`: load from more than one machine. A coordinator keeps
// a run's state in Redis (this appliance's, or any the workers reach) and prints the one string
// workers join with and `bench load|run|matrix --coordinator` drive a run with; `bench locust`
// writes the plan for a Locust cluster instead.
import { readFileSync, writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { loadConfig } from '../lib/config.js';
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
import { dataPaths } from '../lib/paths.js';
import type { Act } from './command-tree.js';
import { planFrom, withPlan, type PlanOptions } from './load-plan.js';
import { examples, numberIn, usage, withConfig, withJson, type ConfigOptions } from './options.js';

/** Stops on SIGINT/SIGTERM: the coordinator and a worker run until told. */
function untilStopped(): AbortSignal {
  const stop = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort());
  return stop.signal;
}

/** This machine's appliance's Redis (its default user), for a coordinator started without --redis. */
function applianceRedis(configFile: string | undefined): string {
  const config = loadConfig({ file: configFile });
  if (config.redisUrl !== undefined) return config.redisUrl;
  const secrets = dataPaths(config.dataDir).secrets;
  let password: string | undefined;
  try {
    password = (JSON.parse(readFileSync(secrets, 'utf8')) as { redisPassword?: string }).redisPassword;
  } catch {
    password = undefined;
  }
  if (!password) throw new CL_ERR_CLI_USAGE(`--redis: no appliance's Redis password in ${secrets} (is this the appliance's machine and user?); pass --redis redis://…`);
  return `redis://default:${encodeURIComponent(password)}@127.0.0.1:${config.redisPort}`;
}

export function registerLoadCommands(bench: Command, act: Act): void {
  const coordinator = withJson(withConfig(bench.command('coordinator').description('coordinate load workers on many machines through Redis; prints the join string')))
    .option('--redis <url>', 'the Redis that holds the run\'s state, reachable from every worker (default: this appliance\'s, loopback only)')
    .option('--token <token>', 'the join token workers and clients present (16-128 of [A-Za-z0-9_-]; default: a random one)')
    .option('--id <id>', 'the coordinator\'s id in that Redis (4-40 of [A-Za-z0-9_-]; default: random)');
  examples(coordinator, [
    'changelens bench coordinator --redis redis://:secret@10.0.0.5:6379',
    'changelens bench coordinator     # on the appliance: its own Redis, workers on this machine',
  ]);
  coordinator.action(act(async (o: ConfigOptions & { redis?: string; token?: string; id?: string; json?: boolean }) => {
    const { checkToken, formatJoin, newId, newToken, parseJoin } = await import('../bench/distributed/protocol.js');
    const { runCoordinator } = await import('../bench/distributed/coordinator.js');
    const redisUrl = o.redis ?? applianceRedis(o.config);
    const token = o.token !== undefined ? usage(() => checkToken(o.token!)) : newToken();
    const id = o.id ?? newId();
    const join = formatJoin({ redisUrl, coordinator: id, token });
    usage(() => parseJoin(join, '--redis/--id'));
    const loopback = /@?(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/.test(redisUrl.replace(/^rediss?:\/\/([^@/]*@)?/, ''));
    if (o.json) process.stdout.write(JSON.stringify({ coordinator: id, join }) + '\n');
    else {
      process.stdout.write(`coordinator ${id} (Ctrl-C stops it)\n`
        + `on each load machine:  changelens bench worker --join '${join}'\n`
        + `then drive a run:      changelens bench load --coordinator '${join}' --rate 1000 --duration 60\n`
        + (loopback ? 'its Redis is this machine\'s loopback: workers elsewhere cannot reach it (pass --redis with an address they reach)\n' : ''));
    }
    await runCoordinator({
      redisUrl, id, token, signal: untilStopped(),
      onControl: (c) => {
        if (o.json) return void process.stdout.write(JSON.stringify(c.kind === 'run' ? { ...c, plan: { target: c.plan.target, rate: c.plan.rate, durationSeconds: c.plan.durationSeconds } } : c) + '\n');
        const line = c.kind === 'event' ? `${c.worker} ${c.event}: ${c.detail}`
          : c.kind === 'run' ? `run ${c.run}: ${c.plan.rate} req/s for ${c.plan.durationSeconds} s against ${c.plan.target}, ${Object.keys(c.epochs[0]?.weights ?? {}).length} workers`
            : c.kind === 'epoch' ? `run ${c.run}: shares from ${c.epoch.fromMs / 1000} s (${c.why}): ${Object.entries(c.epoch.weights).map(([w, n]) => `${w} ${n}`).join(', ') || 'nobody'}`
              : c.kind === 'stop' ? `run ${c.run}: stopping at ${c.atMs / 1000} s`
                : c.kind === 'end' ? `run ${c.run}: ended` : `a run was refused: ${c.reason}`;
        process.stdout.write(`${new Date().toISOString()} ${line}\n`);
      },
    });
    return EXIT.ok;
  }));

  const worker = withJson(bench.command('worker').description('a load worker: joins a coordinator and sends its share of each run'))
    .requiredOption('--join <string>', 'what `changelens bench coordinator` printed')
    .addOption(new Option('--max-rate <req/s>', 'the rate this worker says it can send: its share\'s weight (1-1000000)').argParser(numberIn(1, 1_000_000)).default(4_000))
    .option('--name <name>', 'how it is listed (default: the host name)');
  examples(worker, ['changelens bench worker --join \'redis://:secret@10.0.0.5:6379#k3j2ab.…\' --max-rate 3000']);
  worker.action(act(async (o: { join: string; maxRate: number; name?: string; json?: boolean }) => {
    const { parseJoin } = await import('../bench/distributed/protocol.js');
    const { runWorker } = await import('../bench/distributed/worker.js');
    const join = usage(() => parseJoin(o.join));
    await runWorker({
      join, maxRate: o.maxRate, ...(o.name !== undefined ? { name: o.name } : {}), signal: untilStopped(),
      say: (line) => { if (!o.json) process.stderr.write(`${line}\n`); },
      // What it recorded, histograms included: enough to check a merge against.
      onRun: (run, r) => { if (o.json) process.stdout.write(JSON.stringify({ run, ...r }) + '\n'); },
    });
    return EXIT.ok;
  }));

  const locust = withPlan(bench.command('locust').description('the same load as a locustfile (Locust users paced to approximate the arrival rate)'))
    .option('-o, --out <file>', 'write the locustfile here (default: stdout)');
  examples(locust, ['changelens bench locust --rate 200 --duration 120 --out locustfile.py && locust -f locustfile.py --headless …']);
  locust.action(act(async (o: PlanOptions & { out?: string }) => {
    const { locustfile, locustShape } = await import('../bench/locust.js');
    const plan = await planFrom(o);
    const text = locustfile(plan);
    if (o.out !== undefined) {
      writeFileSync(o.out, text);
      const s = locustShape(plan);
      process.stdout.write(o.json ? JSON.stringify({ out: o.out, ...s }) + '\n' : `wrote ${o.out}; run it with: locust -f ${o.out} --headless --host ${plan.target} -u ${s.users} -r ${s.spawnRate} -t ${plan.durationSeconds}s\n`);
    } else {
      process.stdout.write(o.json ? JSON.stringify({ locustfile: text }) + '\n' : text);
    }
    return EXIT.ok;
  }));
}
