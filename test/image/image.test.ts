// The shipped image, built from the real Dockerfile and run as `docker run` runs it (scripts/image.sh:
// the image's root filesystem, a PID namespace with tini as PID 1, the image's user, env, workdir and
// command, a host directory as /data, host networking). `npm run test:image`; needs root and podman
// (scripts/install-system-deps.sh --test). One container boots cold, serves, runs commands, and
// stops; a second boots warm on the same /data. Figures for the record are printed at the end.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appliancePorts, portsEnv, type AppliancePorts } from '../../bench/harness.js';
import { packageRoot } from '../../lib/package-root.js';
import { eventually } from '../helpers/eventually.js';

const script = join(packageRoot, 'scripts', 'image.sh');
const TAG = 'localhost/changelens:test';
const UID = 10001;
const figures: Record<string, string> = {};

/** scripts/image.sh with arguments; its output, or a thrown error naming the command. */
function image(args: string[], opts: { timeoutMs?: number; allowFail?: boolean } = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(script, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0 && !opts.allowFail) throw new Error(`image.sh ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-3000)}${r.stdout.slice(-3000)}`);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A running container: its name, its output so far, and its exit. */
interface Container { name: string; child: ChildProcess; output: () => string; exited: Promise<number | null>; startedAt: number }

function run(name: string, dataDir: string, env: Record<string, string>, cmd: string[] = []): Container {
  const args = ['run', name, TAG, dataDir, ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), ...(cmd.length ? ['--', ...cmd] : [])];
  const child = spawn(script, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { name, child, output: () => out, exited, startedAt: performance.now() };
}

async function readyWithin(c: Container, port: number, ms: number): Promise<number> {
  return eventually(`/readyz of ${c.name}`, async () => {
    if (c.child.exitCode !== null) throw new Error(`${c.name} exited ${c.child.exitCode}:\n${c.output().slice(-4000)}`);
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
    return res?.status === 200 ? performance.now() - c.startedAt : undefined;
  }, ms);
}

/** `docker stop`: SIGTERM to PID 1; the exit code and how long it took. */
async function stop(c: Container): Promise<{ code: number | null; ms: number }> {
  const t0 = performance.now();
  image(['stop', c.name]);
  const code = await Promise.race([c.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
  if (code === 'timeout') throw new Error(`${c.name} did not exit within 30 s of SIGTERM:\n${c.output().slice(-4000)}`);
  return { code, ms: performance.now() - t0 };
}

/** `docker exec NAME sh -c SCRIPT` as the image's user. */
const exec = (c: Container, shell: string, timeoutMs?: number) => image(['exec', c.name, 'sh', '-c', shell], { timeoutMs, allowFail: true });

describe('the image, run as docker run runs it', () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'changelens-image-')), 'data');
  const name = `cl-test-${process.pid}`;
  let ports: AppliancePorts;
  let env: Record<string, string>;
  let first: Container;
  let taskId: string;

  beforeAll(async () => {
    const build = image(['build', TAG], { timeoutMs: 900_000 });
    figures['build (s)'] = build.stdout.trim().split('\n').at(-1)!;
    const inspect = JSON.parse(spawnSync('podman', ['image', 'inspect', TAG], { encoding: 'utf8' }).stdout) as Array<{ Size: number }>;
    figures['image size (MB)'] = (inspect[0]!.Size / 1e6).toFixed(0);
    figures.layers = '\n' + spawnSync('podman', ['history', '--format', '{{.Size}}\t{{.CreatedBy}}', TAG], { encoding: 'utf8' }).stdout
      .split('\n').filter((l) => l && !l.startsWith('0 B')).map((l) => `    ${l.slice(0, 110)}`).join('\n');
    ports = await appliancePorts();
    const { CHANGELENS_HOST: _loopback, ...shipped } = portsEnv(ports); // the image's own bind address
    env = { ...shipped, CHANGELENS_BACKUP_PG_SCHEDULE: 'off', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off' };
    first = run(name, dataDir, env);
    figures['first boot: ready (ms)'] = (await readyWithin(first, ports.port, 60_000)).toFixed(0);
  }, 1_000_000);

  afterAll(async () => {
    for (const c of [first]) if (c && c.child.exitCode === null) await stop(c).catch(() => c.child.kill('SIGKILL'));
    process.stdout.write(`\nimage figures (${TAG}):\n${Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`);
  });

  it('is no bigger than 450 MB', () => {
    expect(Number(figures['image size (MB)'])).toBeLessThanOrEqual(450);
  });

  it('answers /readyz with 200 within 30 s of start', () => {
    expect(Number(figures['first boot: ready (ms)'])).toBeLessThan(30_000);
  });

  it('runs every process as uid 10001, tini as PID 1', () => {
    const pid1 = Number(image(['pid', name]).stdout.trim());
    const ns = spawnSync('readlink', [`/proc/${pid1}/ns/pid`], { encoding: 'utf8' }).stdout.trim();
    const procs = spawnSync('sh', ['-c', `for p in /proc/[0-9]*; do [ "$(readlink $p/ns/pid 2>/dev/null)" = "${ns}" ] && echo "$(awk '/^Uid/{print $2,$3,$4,$5}' $p/status) $(tr '\\0' ' ' <$p/cmdline | cut -c1-80)"; done`], { encoding: 'utf8' }).stdout
      .split('\n').filter(Boolean);
    expect(readFileSync(`/proc/${pid1}/cmdline`, 'utf8').split('\0')[0]).toBe('/usr/bin/tini');
    // The supervisor, pm2's programs (Postgres and its backends, Redis, API, worker, proxy).
    for (const program of ['postgres', 'redis-server', 'apps/api/main.js', 'apps/worker/main.js', 'proxy/main.js', 'main.js up']) {
      expect(procs.some((p) => p.includes(program)), program).toBe(true);
    }
    expect(procs.filter((p) => !p.startsWith(`${UID} ${UID} ${UID} ${UID} `))).toEqual([]);
  });

  it('lets its user write nothing outside /data and /tmp', () => {
    const r = exec(first, 'find / \\( -path /proc -o -path /sys -o -path /dev -o -path /data -o -path /tmp \\) -prune -o ! -type l -writable -print 2>/dev/null; id -u');
    expect(r.stdout.trim().split('\n')).toEqual([String(UID)]);
  });

  it('HEALTHCHECK exits 0 when ready, non-zero when not ready or not answering', async () => {
    expect(image(['healthcheck', name], { allowFail: true }).status).toBe(0);
    const notReady = createServer((_req, res) => res.writeHead(503).end()).listen(0, '127.0.0.1');
    await new Promise((r) => notReady.once('listening', r));
    try {
      const port = (notReady.address() as { port: number }).port;
      // The same command with its PORT pointed at a server that is not ready, then at nothing (run
      // asynchronously: the not-ready server answers from this process).
      const hc = (p: number) => new Promise<number | null>((resolve) => execFile(script, ['healthcheck', name, '-e', `PORT=${p}`], (err) => resolve(err ? (err.code as number | null) ?? -1 : 0)));
      expect(await hc(port)).not.toBe(0);
      notReady.close();
      expect(await hc(port)).not.toBe(0);
    } finally {
      notReady.close();
    }
  });

  it('changelens status runs inside it (docker exec) and reports it ready', () => {
    const r = exec(first, 'changelens status --json');
    expect(r.status, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout) as { phase: string; dataDir: string };
    expect(status.phase).toBe('ready');
  });

  it('changelens demo runs inside it, writes under /data, and its PNG charts have their text', () => {
    const r = exec(first, 'changelens demo --rate 40 --json', 240_000);
    expect(r.status, r.stderr + r.stdout.slice(-2000)).toBe(0);
    const { out } = JSON.parse(r.stdout) as { out: string };
    expect(out.startsWith('/data/reports/')).toBe(true);
    // Rendered again inside the image with its resvg and its font: the same PNG, with ink in the title.
    const check = exec(first, `node --input-type=module -e '
      import { readFileSync } from "node:fs";
      import { inkIn, renderSvg, TITLE_BOX } from "/app/dist/bench/chart.js";
      const out = ${JSON.stringify(out)};
      const image = renderSvg(readFileSync(out + "/p99.svg", "utf8"));
      console.log(JSON.stringify({ ink: inkIn(image, TITLE_BOX), same: image.asPng().equals(readFileSync(out + "/p99.png")) }));'`);
    expect(check.status, check.stderr).toBe(0);
    const { ink, same } = JSON.parse(check.stdout) as { ink: number; same: boolean };
    expect(same).toBe(true);
    expect(ink).toBeGreaterThan(200);
  });

  it('keeps its data across a stop (SIGTERM → exit 0 within 8 s, Postgres shut down cleanly) and a warm boot', async () => {
    const res = await fetch(`http://127.0.0.1:${ports.port}/api/process`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workMs: 1 }) });
    expect(res.status).toBe(202);
    taskId = ((await res.json()) as { id: string }).id;
    await eventually('the task completed', async () => {
      const t = (await (await fetch(`http://127.0.0.1:${ports.port}/api/tasks/${taskId}`)).json()) as { state: string };
      return t.state === 'completed' ? t : undefined;
    });

    const stopped = await stop(first);
    figures['stop (ms)'] = stopped.ms.toFixed(0);
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(8_000);
    expect(first.output()).toContain('database system is shut down');

    const second = run(name, dataDir, env);
    try {
      figures['warm boot: ready (ms)'] = (await readyWithin(second, ports.port, 60_000)).toFixed(0);
      const task = (await (await fetch(`http://127.0.0.1:${ports.port}/api/tasks/${taskId}`)).json()) as { state: string };
      expect(task.state).toBe('completed');
      expect(second.output()).toContain('"firstBoot":false');
      expect(second.output()).not.toContain('not properly shut down');
      const again = await stop(second);
      expect(again.code).toBe(0);
    } finally {
      if (second.child.exitCode === null) second.child.kill('SIGTERM');
    }
  }, 180_000);
});
