// npm run bench:boot — how fast the appliance boots and stops, and what it costs at idle.
// Measures, over --runs rounds (default 3): first boot (with initdb) to ready, warm boot to ready,
// idle memory of the whole process tree (RSS and PSS: RSS counts Postgres's shared buffers once
// per backend, PSS splits them fairly), and SIGTERM-to-exit. Prints a table against the targets
// and writes JSON to bench/results/.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../lib/package-root.js';
import { launchAppliance, tempDataDir, type Appliance } from './harness.js';

const TARGETS = { firstBootMs: 10_000, warmBootMs: 3_000, idleRssMb: 350, stopMs: 8_000 };

interface Round {
  firstBootMs: number;
  warmBootMs: number;
  idleRssMb: number;
  idlePssMb: number;
  stopMs: number;
  perProcessRssMb: Record<string, number>;
}

async function bootToReady(app: Appliance, t0: number): Promise<number> {
  await app.ready;
  return performance.now() - t0;
}

async function oneRound(idleSeconds: number): Promise<Round> {
  const dataDir = tempDataDir('changelens-bench-');
  let t0 = performance.now();
  let app = await launchAppliance({ dataDir });
  const firstBootMs = await bootToReady(app, t0);
  await app.stop('SIGTERM');

  t0 = performance.now();
  app = await launchAppliance({ dataDir, ports: app.ports });
  const warmBootMs = await bootToReady(app, t0);
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const memory = treeMemory(app.child.pid!);
  const { code, ms: stopMs } = await app.stop('SIGTERM');
  if (code !== 0) throw new Error(`appliance exited ${code} on SIGTERM`);
  return { firstBootMs, warmBootMs, stopMs, ...memory };
}

/** RSS and PSS of a process and all its descendants, from /proc. */
function treeMemory(rootPid: number): { idleRssMb: number; idlePssMb: number; perProcessRssMb: Record<string, number> } {
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
  for (const pid of tree) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
      rss += kb('Rss');
      pss += kb('Pss');
      const label = processLabel(names.get(pid) ?? String(pid));
      perProcess[label] = round1((perProcess[label] ?? 0) + kb('Rss') / 1024);
    } catch {
      // exited while we looked
    }
  }
  return { idleRssMb: round1(rss / 1024), idlePssMb: round1(pss / 1024), perProcessRssMb: perProcess };
}

function processLabel(cmdline: string): string {
  if (cmdline.includes('cli/main.js')) return 'supervisor (pm2 in-process)';
  if (cmdline.includes('postgres')) return 'postgres (all backends)';
  if (cmdline.includes('redis-server')) return 'redis';
  const m = /dist\/(apps\/\w+|proxy)\//.exec(cmdline);
  return m ? m[1]!.replace('apps/', '') : cmdline.slice(0, 40);
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, idle: { type: 'string', default: '5' }, json: { type: 'boolean' } }, strict: true });
  const runs = Number(values.runs);
  const idle = Number(values.idle);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error('--runs: expected an integer 1-20');
  if (!Number.isFinite(idle) || idle < 0 || idle > 120) throw new Error('--idle: expected seconds 0-120');

  const rounds: Round[] = [];
  for (let i = 0; i < runs; i++) {
    rounds.push(await oneRound(idle));
    process.stderr.write(`round ${i + 1}/${runs} done\n`);
  }
  const summary = {
    firstBootMs: median(rounds.map((r) => r.firstBootMs)),
    warmBootMs: median(rounds.map((r) => r.warmBootMs)),
    idleRssMb: median(rounds.map((r) => r.idleRssMb)),
    idlePssMb: median(rounds.map((r) => r.idlePssMb)),
    stopMs: median(rounds.map((r) => r.stopMs)),
  };
  const result = { bench: 'boot', at: new Date().toISOString(), runs, idleSeconds: idle, targets: TARGETS, summary, rounds };
  const dir = join(packageRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `boot-${result.at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');

  if (values.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const row = (name: string, value: number, unit: string, target: number): string =>
    `${name.padEnd(28)} ${value.toFixed(unit === 'MB' ? 1 : 0).padStart(8)} ${unit.padEnd(3)} target ≤ ${String(target).padStart(6)} ${unit}  ${(value / target).toFixed(2)}× of target  ${value <= target ? 'ok' : 'OVER'}`;
  const lines = [
    `ChangeLens boot benchmark: median of ${runs} round(s), idle ${idle} s before measuring memory`,
    row('first boot (initdb) → ready', summary.firstBootMs, 'ms', TARGETS.firstBootMs),
    row('warm boot → ready', summary.warmBootMs, 'ms', TARGETS.warmBootMs),
    row('idle RSS, all processes', summary.idleRssMb, 'MB', TARGETS.idleRssMb),
    `${'idle PSS, all processes'.padEnd(28)} ${summary.idlePssMb.toFixed(1).padStart(8)} MB  (shared pages split between processes)`,
    row('SIGTERM → exit', summary.stopMs, 'ms', TARGETS.stopMs),
    '',
    'idle RSS per process (last round):',
    ...Object.entries(rounds.at(-1)!.perProcessRssMb).map(([k, v]) => `  ${k.padEnd(30)} ${v.toFixed(1).padStart(7)} MB`),
    '',
    `written: ${file}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`bench:boot failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
