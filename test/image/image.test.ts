// The shipped image, built from the real Dockerfile and run as `docker run` runs it (scripts/image.sh:
// the image's root filesystem, a PID namespace with tini as PID 1, the image's user, env, workdir and
// command, a host directory as /data, host networking). `npm run test:image`; needs root and podman
// (scripts/install-system-deps.sh --test). One container boots cold, serves, runs commands, and
// stops; a second boots warm on the same /data. Figures for the record are printed at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appliancePorts, portsEnv, type AppliancePorts } from '../../bench/harness.js';
import { packageRoot } from '../../lib/package-root.js';
import { eventually } from '../helpers/eventually.js';

const script = join(packageRoot, 'scripts', 'image.sh');
const TAG = 'localhost/changelens:test';
const UID = 10001;
const figures: Record<string, string> = {};

interface Result { status: number | null; stdout: string; stderr: string }

/**
 * A command, asynchronously (the containers' output must keep being read while it runs). On its
 * timeout its whole process group is killed: what `exec` started inside the container too.
 */
function command(file: string, args: string[], timeoutMs = 120_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`${file} ${args.join(' ')}: no answer within ${timeoutMs} ms\n${stderr.slice(-2000)}${stdout.slice(-2000)}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** scripts/image.sh; throws (with its output) unless it succeeds. */
async function image(args: string[], timeoutMs?: number): Promise<Result> {
  const r = await command(script, args, timeoutMs);
  if (r.status !== 0) throw new Error(`image.sh ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-3000)}${r.stdout.slice(-3000)}`);
  return r;
}

/** A running container: its name, its output so far, and its exit. */
interface Container { name: string; child: ChildProcess; output: () => string; exited: Promise<number | null>; startedAt: number }

function run(name: string, dataDir: string, env: Record<string, string>): Container {
  const child = spawn(script, ['run', name, TAG, dataDir, ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`])], { stdio: ['ignore', 'pipe', 'pipe'] });
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

/** `docker stop` (SIGTERM to PID 1, SIGKILL 10 s later): how long until PID 1 was gone, and the exit code. */
async function stop(c: Container): Promise<{ code: number | null; ms: number }> {
  const t0 = performance.now();
  await image(['stop', c.name, '10'], 30_000);
  const ms = performance.now() - t0;
  // The run command exits as soon as PID 1 is gone: bounded, so a stop that missed PID 1 fails here
  // (and the hooks go on) instead of hanging until the hook's timeout.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${c.name} still runs 30 s after image.sh stop returned`)), 30_000); });
  try {
    return { code: await Promise.race([c.exited, late]), ms };
  } finally {
    clearTimeout(timer);
  }
}

/** `docker exec NAME sh -c SCRIPT`, as the image's user. */
const exec = (c: Container, shell: string, timeoutMs?: number, user?: string) => command(script, ['exec', c.name, ...(user ? ['-u', user] : []), 'sh', '-c', shell], timeoutMs);
const healthcheck = (c: Container, env: string[] = []) => command(script, ['healthcheck', c.name, ...env.flatMap((e) => ['-e', e])], 30_000);

describe('the image, run as docker run runs it', () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'changelens-image-')), 'data');
  const name = `cl-test-${process.pid}`;
  const containers: Container[] = [];
  let ports: AppliancePorts;
  let env: Record<string, string>;
  let first: Container;

  beforeAll(async () => {
    const build = await image(['build', TAG], 900_000);
    figures['build (s)'] = build.stdout.trim().split('\n').at(-1)!;
    const [inspect] = JSON.parse((await command('podman', ['image', 'inspect', TAG])).stdout) as Array<{ Size: number }>;
    figures['image size (MB)'] = (inspect!.Size / 1e6).toFixed(0);
    figures.layers = '\n' + (await command('podman', ['history', '--format', '{{.Size}}\t{{.CreatedBy}}', TAG])).stdout
      .split('\n').filter((l) => l && !l.startsWith('0 B')).map((l) => `    ${l.slice(0, 110)}`).join('\n');
    ports = await appliancePorts();
    const { CHANGELENS_HOST: _loopback, ...shipped } = portsEnv(ports); // the image binds its own default
    env = { ...shipped, CHANGELENS_BACKUP_PG_SCHEDULE: 'off', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off' };
    first = run(name, dataDir, env);
    containers.push(first);
    figures['first boot: ready (ms)'] = (await readyWithin(first, ports.port, 60_000)).toFixed(0);
  }, 1_000_000);

  afterAll(async () => {
    for (const c of containers) if (c.child.exitCode === null) await stop(c).catch(() => c.child.kill('SIGTERM'));
    rmSync(dirname(dataDir), { recursive: true, force: true });
    process.stdout.write(`\nimage figures (${TAG}):\n${Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`);
  });

  it('is no bigger than 450 MB, keeps /data a volume and exposes 8080', async () => {
    expect(Number(figures['image size (MB)'])).toBeLessThanOrEqual(450);
    const [inspect] = JSON.parse((await command('podman', ['image', 'inspect', TAG])).stdout) as Array<{ Config: { Volumes?: object; ExposedPorts?: object } }>;
    expect(Object.keys(inspect!.Config.Volumes ?? {})).toContain('/data');
    expect(Object.keys(inspect!.Config.ExposedPorts ?? {})).toContain('8080/tcp');
  });

  it('answers /readyz with 200 within 30 s of start, on every interface (what -p 8080:8080 needs)', () => {
    expect(Number(figures['first boot: ready (ms)'])).toBeLessThan(30_000);
    // Host networking: the public port's listening socket, in /proc/net/tcp (0.0.0.0 is 00000000).
    const hexPort = ports.port.toString(16).toUpperCase().padStart(4, '0');
    const listening = readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((l) => l.includes(`:${hexPort} `) && / 0A /.test(l));
    expect(listening.map((l) => l.trim().split(/\s+/)[1])).toContain(`00000000:${hexPort}`);
  });

  it('keeps root to tini and the supervisor: Postgres, Redis and the proxy are uid 10001, the API and the worker (a colour\'s release) the release user', async () => {
    const pid1 = Number((await image(['pid', name])).stdout.trim());
    const procs = (await command('sh', ['-c', `ns=$(readlink /proc/${pid1}/ns/pid); for p in /proc/[0-9]*; do [ "$(readlink $p/ns/pid 2>/dev/null)" = "$ns" ] && echo "$(awk '/^Uid/{print $2,$3,$4,$5}' $p/status) $(awk '/^Groups/{$1=""; gsub(/^ +/, ""); gsub(/ +/, ","); print "groups=" $0}' $p/status) $(tr '\\0' ' ' <$p/cmdline | cut -c1-80)"; done`])).stdout
      .split('\n').filter(Boolean);
    expect(readFileSync(`/proc/${pid1}/cmdline`, 'utf8').split('\0')[0]).toBe('/usr/bin/tini');
    const releaseUid = Number((await exec(first, 'id -u changelens-app')).stdout.trim());
    expect(releaseUid).toBeGreaterThan(0);
    expect(releaseUid).not.toBe(UID);
    // (tini's command line holds the supervisor's too: `tini -- node dist/cli/main.js up`.)
    const uidOf = (program: string): number[] => procs.filter((p) => p.includes(program) && (program === '/usr/bin/tini' || !p.includes('/usr/bin/tini'))).map((p) => Number(p.split(' ')[0]));
    expect(uidOf('/usr/bin/tini')).toEqual([0]);
    expect(uidOf('main.js up')).toEqual([0]);
    for (const program of ['postgres', 'redis-server', 'proxy/main.js']) {
      expect(uidOf(program).length, program).toBeGreaterThan(0);
      expect(new Set(uidOf(program)), program).toEqual(new Set([UID]));
    }
    // api-blue and worker-blue: both start through the entry.
    expect(uidOf('supervisor/release-entry.js').length).toBeGreaterThanOrEqual(2);
    expect(new Set(uidOf('supervisor/release-entry.js'))).toEqual(new Set([releaseUid]));
    // Every process but tini and the supervisor: real, effective, saved and filesystem ids alike.
    const others = procs.filter((p) => !p.includes('/usr/bin/tini') && !p.includes('main.js up'));
    for (const p of others) expect(p, p).toMatch(new RegExp(`^(${UID} ${UID} ${UID} ${UID}|${releaseUid} ${releaseUid} ${releaseUid} ${releaseUid}) `));
    expect(others.some((p) => /groups=(0|\S*,0)(,|\s)/.test(p)), others.join('\n')).toBe(false);
  });

  it('lets the service user write nothing outside /data and /tmp, and the release user nothing outside /tmp', async () => {
    const writable = (user: string) => exec(first, 'find / \\( -path /proc -o -path /sys -o -path /dev -o -path /data -o -path /tmp \\) -prune -o ! -type l -writable -print 2>/dev/null; id -u', 60_000, user);
    const service = await writable(String(UID));
    expect(service.stdout.trim().split('\n')).toEqual([String(UID)]);
    const releaseUid = (await exec(first, 'id -u changelens-app')).stdout.trim();
    const releaseGid = (await exec(first, 'id -g changelens-app')).stdout.trim();
    const release = await exec(first, 'find /data -writable -print 2>/dev/null; cat /data/state/secrets.json 2>&1; ls /data/state 2>&1; ls /data/releases >/dev/null && echo releases-readable; id -u', 60_000, `${releaseUid}:${releaseGid}`);
    expect(release.stdout.trim().split('\n')).toEqual([
      'cat: /data/state/secrets.json: Permission denied', "ls: cannot open directory '/data/state': Permission denied", 'releases-readable', releaseUid,
    ]);
    expect((await writable(`${releaseUid}:${releaseGid}`)).stdout.trim().split('\n')).toEqual([releaseUid]);
  });

  it('HEALTHCHECK exits 0 when ready, non-zero when its /readyz says not ready or nothing answers', async () => {
    expect((await healthcheck(first)).status).toBe(0);
    const notReady = createServer((_req, res) => res.writeHead(503).end()).listen(0, '127.0.0.1');
    await new Promise((r) => notReady.once('listening', r));
    const port = (notReady.address() as { port: number }).port;
    try {
      expect((await healthcheck(first, [`PORT=${port}`])).status).not.toBe(0);
    } finally {
      notReady.close();
    }
    expect((await healthcheck(first, [`PORT=${port}`])).status).not.toBe(0);
  });

  it('changelens status runs inside it (docker exec) and reports it ready', async () => {
    const r = await exec(first, 'changelens status --json');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ phase: 'ready', dataDir: '/data' });
  });

  it('backs up and verifies inside it (pg_dump, pg_restore and Redis with what the slimmed image kept)', async () => {
    const now = await exec(first, 'changelens backup now --json', 120_000);
    expect(now.status, now.stderr + now.stdout).toBe(0);
    const { id, kinds } = JSON.parse(now.stdout) as { id: string; kinds: string[] };
    expect(kinds.sort()).toEqual(['postgres', 'redis']);
    const verify = await exec(first, `changelens backup verify ${id} --json`, 120_000);
    expect(verify.status, verify.stderr + verify.stdout).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ id, ok: true });
  });

  it('changelens demo runs inside it, writes under /data, and its PNG charts have their text', async () => {
    const r = await exec(first, 'changelens demo --rate 40 --json', 240_000);
    expect(r.status, r.stderr + r.stdout.slice(-2000)).toBe(0);
    const { out } = JSON.parse(r.stdout) as { out: string };
    expect(out.startsWith('/data/reports/')).toBe(true);
    // Rendered again inside the image with its resvg and its font: the same PNG, with ink in the title.
    const check = await exec(first, `node --input-type=module -e '
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
    const { id } = (await res.json()) as { id: string };
    await eventually('the task completed', async () => {
      const t = (await (await fetch(`http://127.0.0.1:${ports.port}/api/tasks/${id}`)).json()) as { state: string };
      return t.state === 'completed' ? t : undefined;
    });

    const stopped = await stop(first);
    figures['stop (ms)'] = stopped.ms.toFixed(0);
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(8_000);
    expect(first.output()).toContain('database system is shut down');

    const second = run(name, dataDir, env);
    containers.push(second);
    // While it boots, the HEALTHCHECK says not ready. A warm boot takes seconds (Postgres, then
    // Redis, the API, the proxy); the check runs as soon as PID 1 exists.
    await eventually('PID 1 of the second container', async () => ((await command(script, ['pid', name])).status === 0 ? true : undefined));
    const early = await healthcheck(second);
    const readyAlready = second.output().includes('"msg":"appliance ready"');
    expect({ readyAlready, status: early.status === 0 ? 0 : 'non-zero' }).toEqual({ readyAlready: false, status: 'non-zero' });

    figures['warm boot: ready (ms)'] = (await readyWithin(second, ports.port, 60_000)).toFixed(0);
    const task = (await (await fetch(`http://127.0.0.1:${ports.port}/api/tasks/${id}`)).json()) as { state: string };
    expect(task.state).toBe('completed');
    // The supervisor says "appliance ready" just after the proxy's /readyz first answers 200.
    const ready = await eventually('the second boot\'s "appliance ready" line', async () => second.output().split('\n').find((l) => l.includes('"msg":"appliance ready"')));
    expect(JSON.parse(ready)).toMatchObject({ firstBoot: false });
    expect(second.output()).not.toContain('not properly shut down');
    const again = await stop(second);
    expect(again.code).toBe(0);
  }, 180_000);
});
