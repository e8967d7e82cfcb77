// npm run bench:boot — how fast the appliance boots and stops, and what it costs at idle.
// Measures, over --runs rounds (default 3): first boot (with initdb) to ready, warm boot to ready,
// idle memory of the whole process tree (RSS and PSS: RSS counts Postgres's shared buffers once
// per backend, PSS splits them fairly), and SIGTERM-to-exit; per process, RSS and PSS; per stage of
// the warm boot, when it started and was ready. Prints a table against the targets and writes JSON
// to bench/results/.
// --baseline OTHER/dist boots another build (a checkout of the commit to compare with) in the same
// rounds, alternating with this one, and prints both side by side.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { packageRoot } from '../lib/package-root.js';
import { launchAppliance, tempDataDir, type Appliance } from './harness.js';

const TARGETS = { firstBootMs: 6_000, warmBootMs: 2_500, idlePssMb: 300, stopMs: 8_000 };
/** Memory is also read this long after ready: a Node process's heap keeps the boot's garbage until V8's memory reducer runs (10–40 s idle, measured). */
const AFTER_BOOT_S = 5;

type Launch = typeof launchAppliance;
interface Stage { name: string; startedMs: number; readyMs: number }

interface Round {
  firstBootMs: number;
  warmBootMs: number;
  idleRssMb: number;
  idlePssMb: number;
  /** PSS of the whole tree 5 s after ready (or at --idle if sooner): what the boot left, before V8's memory reducer acts. */
  afterBootPssMb: number;
  stopMs: number;
  perProcessRssMb: Record<string, number>;
  perProcessPssMb: Record<string, number>;
  /** The warm boot's stages, from the supervisor's 'appliance ready' line (absent from builds that do not log them). */
  stages: Stage[];
}

async function bootToReady(app: Appliance, t0: number): Promise<number> {
  await app.ready;
  return performance.now() - t0;
}

async function oneRound(launch: Launch, idleSeconds: number): Promise<Round> {
  const dataDir = tempDataDir('changelens-bench-');
  let t0 = performance.now();
  let app = await launch({ dataDir });
  const firstBootMs = await bootToReady(app, t0);
  await app.stop('SIGTERM');

  t0 = performance.now();
  app = await launch({ dataDir, ports: app.ports });
  const warmBootMs = await bootToReady(app, t0);
  const stages = ((await app.ready) as { stages?: Stage[] }).stages ?? [];
  const early = Math.min(AFTER_BOOT_S, idleSeconds);
  await new Promise((r) => setTimeout(r, early * 1000));
  const afterBootPssMb = treeMemory(app.child.pid!).idlePssMb;
  await new Promise((r) => setTimeout(r, (idleSeconds - early) * 1000));
  const memory = treeMemory(app.child.pid!);
  const { code, ms: stopMs } = await app.stop('SIGTERM');
  if (code !== 0) throw new Error(`appliance exited ${code} on SIGTERM`);
  return { firstBootMs, warmBootMs, stopMs, stages, afterBootPssMb, ...memory };
}

/** RSS and PSS of a process and all its descendants, from /proc. */
function treeMemory(rootPid: number): { idleRssMb: number; idlePssMb: number; perProcessRssMb: Record<string, number>; perProcessPssMb: Record<string, number> } {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      parents.set(Number(entry), Number(stat.slice(close + 2).split(' ')[1]));
      names.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(0, 2).join(' '));
    } catch {
      // exited while we looked
    }
  }
  const tree = new Set([rootPid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parents) if (tree.has(ppid) && !tree.has(pid)) { tree.add(pid); grew = true; }
  }
  let rss = 0;
  let pss = 0;
  const perProcess: Record<string, number> = {};
  const perProcessPss: Record<string, number> = {};
  for (const pid of tree) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
      rss += kb('Rss');
      pss += kb('Pss');
      const label = processLabel(names.get(pid) ?? String(pid));
      perProcess[label] = round1((perProcess[label] ?? 0) + kb('Rss') / 1024);
      perProcessPss[label] = round1((perProcessPss[label] ?? 0) + kb('Pss') / 1024);
    } catch {
      // exited while we looked
    }
  }
  return { idleRssMb: round1(rss / 1024), idlePssMb: round1(pss / 1024), perProcessRssMb: perProcess, perProcessPssMb: perProcessPss };
}

function processLabel(cmdline: string): string {
  if (cmdline.includes('cli/main.js')) return 'supervisor (pm2 in-process)';
  if (cmdline.includes('postgres')) return 'postgres (all backends)';
  if (cmdline.includes('redis-server')) return 'redis';
  // A release's processes all start through release-entry.js (the API colour and its worker alike).
  if (cmdline.includes('release-entry')) return 'api + worker (release-entry)';
  const m = /dist\/(apps\/\w+|proxy)\//.exec(cmdline);
  return m ? m[1]!.replace('apps/', '') : cmdline.slice(0, 40);
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function summarise(rounds: Round[]) {
  return {
    firstBootMs: median(rounds.map((r) => r.firstBootMs)),
    warmBootMs: median(rounds.map((r) => r.warmBootMs)),
    idleRssMb: median(rounds.map((r) => r.idleRssMb)),
    idlePssMb: median(rounds.map((r) => r.idlePssMb)),
    afterBootPssMb: median(rounds.map((r) => r.afterBootPssMb)),
    stopMs: median(rounds.map((r) => r.stopMs)),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, idle: { type: 'string', default: '30' }, json: { type: 'boolean' }, baseline: { type: 'string' } }, strict: true });
  const runs = Number(values.runs);
  const idle = Number(values.idle);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error('--runs: expected an integer 1-20');
  if (!Number.isFinite(idle) || idle < 0 || idle > 120) throw new Error('--idle: expected seconds 0-120');
  let baseLaunch: Launch | undefined;
  if (values.baseline !== undefined) {
    const harness = resolve(values.baseline, 'bench', 'harness.js');
    if (!existsSync(harness)) throw new Error(`--baseline: no ${harness} (give the dist/ directory of a built checkout)`);
    baseLaunch = (await import(pathToFileURL(harness).href) as { launchAppliance: Launch }).launchAppliance;
  }

  const rounds: Round[] = [];
  const baseRounds: Round[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternating, and which goes first alternates too: neither build always meets a warmer box.
    const order = i % 2 === 0 ? ['this', 'base'] : ['base', 'this'];
    for (const which of order) {
      if (which === 'this') rounds.push(await oneRound(launchAppliance, idle));
      else if (baseLaunch) baseRounds.push(await oneRound(baseLaunch, idle));
    }
    process.stderr.write(`round ${i + 1}/${runs} done\n`);
  }
  const summary = summarise(rounds);
  const baseline = baseLaunch ? { dist: values.baseline, summary: summarise(baseRounds), rounds: baseRounds } : undefined;
  const result = { bench: 'boot', at: new Date().toISOString(), runs, idleSeconds: idle, targets: TARGETS, summary, rounds, ...(baseline ? { baseline } : {}) };
  const dir = join(packageRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `boot-${result.at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');

  if (values.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const b = baseline?.summary;
  const row = (name: string, value: number, unit: string, target: number | null, base: number | undefined): string =>
    `${name.padEnd(28)} ${value.toFixed(unit === 'MB' ? 1 : 0).padStart(8)} ${unit.padEnd(3)}` +
    (base !== undefined ? ` baseline ${base.toFixed(unit === 'MB' ? 1 : 0).padStart(8)} ${unit} (${(value / base).toFixed(2)}×)` : '') +
    (target !== null ? `  target ≤ ${String(target).padStart(6)} ${unit}  ${value <= target ? 'ok' : 'OVER'}` : '');
  const last = rounds.at(-1)!;
  const lastBase = baseRounds.at(-1);
  const labels = [...new Set([...Object.keys(last.perProcessPssMb), ...Object.keys(lastBase?.perProcessPssMb ?? {})])];
  const mb = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(1)).padStart(7);
  const lines = [
    `ChangeLens boot benchmark: median of ${runs} round(s), idle ${idle} s before measuring memory${baseline ? `; baseline ${values.baseline} in the same rounds, alternating` : ''}`,
    row('first boot (initdb) → ready', summary.firstBootMs, 'ms', TARGETS.firstBootMs, b?.firstBootMs),
    row('warm boot → ready', summary.warmBootMs, 'ms', TARGETS.warmBootMs, b?.warmBootMs),
    row(`PSS ${AFTER_BOOT_S} s after ready`, summary.afterBootPssMb, 'MB', null, b?.afterBootPssMb),
    row('idle PSS, all processes', summary.idlePssMb, 'MB', TARGETS.idlePssMb, b?.idlePssMb),
    row('idle RSS, all processes', summary.idleRssMb, 'MB', null, b?.idleRssMb),
    row('SIGTERM → exit', summary.stopMs, 'ms', TARGETS.stopMs, b?.stopMs),
    '',
    `idle memory per process (last round, ${idle} s after ready; PSS splits shared pages, RSS counts them in each):`,
    `  ${'process'.padEnd(30)} ${'PSS MB'.padStart(7)} ${'RSS MB'.padStart(7)}${lastBase ? `   baseline ${'PSS'.padStart(7)} ${'RSS'.padStart(7)}` : ''}`,
    ...labels.map((k) => `  ${k.padEnd(30)} ${mb(last.perProcessPssMb[k])} ${mb(last.perProcessRssMb[k])}${lastBase ? `            ${mb(lastBase.perProcessPssMb[k])} ${mb(lastBase.perProcessRssMb[k])}` : ''}`),
    '',
    ...(last.stages.length > 0 ? ['warm boot stages (last round; seconds from the supervisor\'s start, started → ready):', ...last.stages.map((st) => `  ${st.name.padEnd(30)} ${(st.startedMs / 1000).toFixed(2).padStart(6)} → ${(st.readyMs / 1000).toFixed(2).padStart(6)}`), ''] : []),
    ...(lastBase && lastBase.stages.length > 0 ? ['baseline warm boot stages:', ...lastBase.stages.map((st) => `  ${st.name.padEnd(30)} ${(st.startedMs / 1000).toFixed(2).padStart(6)} → ${(st.readyMs / 1000).toFixed(2).padStart(6)}`), ''] : []),
    `written: ${file}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`bench:boot failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
