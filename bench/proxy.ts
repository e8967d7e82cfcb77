// npm run bench:proxy — the proxy against its peers on this box, one run, targets interleaved:
//   direct       wrk straight to an upstream
//   changelens   the proxy as it runs (buildProxyServer, a 10 % canary, every response recorded into
//                the judge's slices and the Prometheus histogram)
//   no-judge     the same proxy without recording (what the judge costs)
//   stock        a bare fastify + @fastify/http-proxy choosing the upstream by weight
//   bare         the floor for a Node proxy: node:http + an undici Pool per colour, nothing else
//   nginx        Debian's nginx, one worker, weighted upstreams with keepalive
// Each target is its own process; two small upstreams answer "ok". Per round and target: a warm-up,
// wrk's maximum throughput (1 thread, 32 connections), then 1,000 req/s open-model (latency from
// each request's intended send time, HdrHistogram) for P50/P99. Reported: medians over the rounds of
// each round's ratio to nginx and to direct (the box is noisy; paired ratios travel better than
// absolute figures), and the judge's overhead. Writes JSON to bench/results/.
//   npm run bench:proxy [-- --rounds 5 --seconds 4] [--baseline OTHER/dist]
// --baseline runs another build's proxy (its dist/bench/proxy.js, e.g. a worktree of main) as two
// more targets in the same rounds, "changelens@base" and "no-judge@base": a change measured side by
// side with what it changes, on the same box in the same minutes. CHANGELENS_BENCH_PROFILE=<target>
// runs that target under --cpu-prof and prints where its time went (self time by function).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { PROXY_NODE_ARGS } from '../ecosystem.config.js';
import { createLogger } from '../lib/logger.js';
import { initTracing } from '../lib/tracing.js';
import { packageRoot } from '../lib/package-root.js';
import { createProxyMetrics, SlicedWindow } from '../monitoring/index.js';
import { buildProxyServer } from '../proxy/server.js';
import type { RoutingTable } from '../lib/contracts/routing.js';
import { freePorts } from './harness.js';
import { runLoad } from './loadgen.js';

const { values } = parseArgs({ options: { role: { type: 'string' }, port: { type: 'string' }, blue: { type: 'string' }, green: { type: 'string' }, rounds: { type: 'string', default: '5' }, seconds: { type: 'string', default: '4' }, baseline: { type: 'string' } } });
const CANARY: RoutingTable = { stable: 'blue', candidate: 'green', candidateWeight: 0.1, rolloutId: 'bench' };
const RATE = 1_000;

if (values.role) await child(values.role, Number(values.port), Number(values.blue), Number(values.green));
else await main(Number(values.rounds), Number(values.seconds), values.baseline);

/** One target process. */
async function child(role: string, port: number, blue: number, green: number): Promise<void> {
  // Exit normally on SIGTERM, so --cpu-prof (CHANGELENS_BENCH_PROFILE=<role>) writes its profile.
  process.on('SIGTERM', () => process.exit(0));
  if (role === 'upstream') {
    for (const p of [blue, green]) createServer((_req, res) => res.end('ok')).listen(p, '127.0.0.1').keepAliveTimeout = 72_000;
    return;
  }
  const upstreams = { blue: `http://127.0.0.1:${blue}`, green: `http://127.0.0.1:${green}` };
  if (role === 'bare') {
    const pools = [new Pool(upstreams.blue, { connections: 128 }), new Pool(upstreams.green, { connections: 128 })];
    createServer((req, res) => {
      pools[Math.random() < 0.1 ? 1 : 0]!.dispatch({ method: req.method as 'GET', path: req.url!, headers: req.headers, body: null }, {
        onRequestStart() {},
        onResponseStart(_c, status, headers) { res.writeHead(status, headers as Record<string, string>); },
        onResponseData(_c, chunk) { res.write(chunk); },
        onResponseEnd() { res.end(); },
        onResponseError() { res.writeHead(502).end(); },
      });
    }).listen(port, '127.0.0.1').keepAliveTimeout = 72_000;
    return;
  }
  if (role === 'stock') {
    const Fastify = (await import('fastify')).default;
    const httpProxy = (await import('@fastify/http-proxy')).default;
    const app = Fastify();
    await app.register(httpProxy, { upstream: '', replyOptions: { getUpstream: () => (Math.random() < 0.1 ? upstreams.green : upstreams.blue) } });
    await app.listen({ port, host: '127.0.0.1' });
    return;
  }
  // As in production with no OTLP endpoint: trace ids for logs and the traceparent to the API,
  // nothing recorded (lib/tracing.ts).
  await initTracing('proxy', undefined);
  const window = new SlicedWindow();
  const metrics = createProxyMetrics({ processMetrics: false });
  const app = await buildProxyServer({
    log: createLogger('bench-proxy', { level: 'warn' }),
    upstreams,
    routingTable: () => CANARY,
    accessLog: 'off',
    // As proxy/main.ts wires it: the judge's slices and the Prometheus histogram, per response.
    ...(role === 'changelens' ? { onMeasured: (color, ms, status) => { window.record(color, ms, status >= 500, Date.now()); metrics.observeRequest(color, 'bench', ms, status); } } : {}),
  });
  await app.listen({ port, host: '127.0.0.1' });
}

interface Target { name: string; port: number; proc?: ChildProcess }
interface Measure { rps: number; p50: number; p99: number; cpuUsPerReq: number }

async function main(rounds: number, seconds: number, baseline: string | undefined): Promise<void> {
  const [blue, green, direct, lens, noJudge, stock, bare, nginxPort, baseLens, baseNoJudge] = await freePorts(10);
  const self = fileURLToPath(import.meta.url);
  const baseScript = baseline === undefined ? undefined : resolve(baseline, 'bench', 'proxy.js');
  if (baseScript !== undefined && !existsSync(baseScript)) throw new Error(`--baseline: no ${baseScript} (give the dist/ directory of a built checkout)`);
  const profileDir = mkdtempSync(join(tmpdir(), 'bench-proxy-profile-'));
  const procs: ChildProcess[] = [];
  const start = (role: string, port: number, script = self, name = role): ChildProcess => {
    // This build's proxy runs with the appliance's V8 flags for it (a baseline's, with its own).
    const args = [...(script === self && (role === 'changelens' || role === 'no-judge') ? PROXY_NODE_ARGS : []), ...(process.env.CHANGELENS_BENCH_PROFILE === name ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])];
    const p = spawn(process.execPath, [...args, script, '--role', role, '--port', String(port), '--blue', String(blue), '--green', String(green)], { stdio: 'inherit' });
    procs.push(p);
    return p;
  };
  start('upstream', 0);
  const nginxDir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  writeFileSync(join(nginxDir, 'nginx.conf'), `worker_processes 1; daemon off; pid ${nginxDir}/nginx.pid; error_log ${nginxDir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; client_body_temp_path ${nginxDir}; proxy_temp_path ${nginxDir}; fastcgi_temp_path ${nginxDir}; uwsgi_temp_path ${nginxDir}; scgi_temp_path ${nginxDir};
  upstream app { server 127.0.0.1:${blue} weight=9; server 127.0.0.1:${green} weight=1; keepalive 64; }
  server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}\n`);
  const nginx = spawn('/usr/sbin/nginx', ['-c', join(nginxDir, 'nginx.conf'), '-p', nginxDir], { stdio: 'inherit' });
  procs.push(nginx);
  const targets: Target[] = [
    { name: 'direct', port: direct! },
    { name: 'changelens', port: lens!, proc: start('changelens', lens!) },
    { name: 'no-judge', port: noJudge!, proc: start('no-judge', noJudge!) },
    { name: 'stock', port: stock!, proc: start('stock', stock!) },
    { name: 'bare', port: bare!, proc: start('bare', bare!) },
    { name: 'nginx', port: nginxPort!, proc: nginx },
    ...(baseScript === undefined ? [] : [
      { name: 'changelens@base', port: baseLens!, proc: start('changelens', baseLens!, baseScript, 'changelens@base') },
      { name: 'no-judge@base', port: baseNoJudge!, proc: start('no-judge', baseNoJudge!, baseScript, 'no-judge@base') },
    ]),
  ];
  // "direct" is the blue upstream itself.
  targets[0]!.port = blue!;
  try {
    await new Promise((r) => setTimeout(r, 2_000));
    const results: Record<string, Measure[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        const url = `http://127.0.0.1:${t.port}/api/data`;
        wrk(url, 1); // warm-up: JIT, pools
        // CPU per request (user + system, the target's whole process tree) steadies what req/s on a
        // shared 2-core box does not: wrk, the upstream and the target compete for the same cores.
        const cpu0 = t.proc?.pid ? treeCpuMs(t.proc.pid) : 0;
        const { rps, requests } = wrk(url, seconds);
        const cpuUsPerReq = t.proc?.pid ? (1000 * (treeCpuMs(t.proc.pid) - cpu0)) / requests : 0;
        const { origin, pathname } = new URL(url);
        const { latency } = await runLoad({ target: origin, rate: RATE, durationSeconds: seconds, mix: [{ method: 'GET', path: pathname, weight: 1 }], connections: 64 });
        const { p50Ms: p50, p99Ms: p99 } = latency;
        results[t.name]!.push({ rps, p50, p99, cpuUsPerReq });
        process.stderr.write(`round ${round} ${t.name.padEnd(10)} ${Math.round(rps)} req/s (${cpuUsPerReq.toFixed(1)} µs CPU/req), at ${RATE} req/s P50 ${p50.toFixed(2)} ms P99 ${p99.toFixed(2)} ms\n`);
      }
    }
    report(results, rounds, baseScript !== undefined);
  } finally {
    await Promise.all(procs.map((p) => new Promise((done) => {
      if (p.exitCode !== null || p.signalCode !== null) return done(null);
      p.once('exit', done);
      p.kill('SIGTERM');
    })));
  }
  if (process.env.CHANGELENS_BENCH_PROFILE) printProfile(profileDir, process.env.CHANGELENS_BENCH_PROFILE);
}

/** The top of a --cpu-prof profile by self time, grouped by function and file. */
function printProfile(dir: string, target: string): void {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return void console.log(`no profile written for ${target} (CHANGELENS_BENCH_PROFILE names a target: changelens, no-judge, bare, stock, changelens@base…)`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[];
  };
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = byNode.get(id)!.callFrame;
    const where = url ? `${url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  const idle = [...self].filter(([k]) => k === '(idle)').reduce((n, [, v]) => n + v, 0);
  console.log(`\nprofile of ${target} (${join(dir, file)}): self time, % of busy time (idle ${(100 * idle / total).toFixed(0)} % of the run)`);
  for (const [key, us] of [...self].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`${(100 * us / (total - idle)).toFixed(1).padStart(6)} %  ${key}`);
  }
}

/** wrk's maximum throughput, one thread, 32 connections, and how many requests it completed. */
function wrk(url: string, seconds: number): { rps: number; requests: number } {
  const r = spawnSync('wrk', ['-t1', '-c32', `-d${seconds}s`, url], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  const n = /(\d+) requests in/.exec(r.stdout);
  if (!m || !n) throw new Error(`wrk failed: ${r.stderr || r.stdout}`);
  return { rps: Number(m[1]), requests: Number(n[1]) };
}

/** User + system CPU of a process and its descendants (nginx's workers), in ms, from /proc. */
function treeCpuMs(root: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // After the command: state, ppid, … utime is field 14 and stime 15 of the whole line.
      stats.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // exited while we looked
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, s] of stats) if (tree.has(s.ppid) && !tree.has(pid)) { tree.add(pid); grew = true; }
  }
  let ticks = 0;
  for (const pid of tree) ticks += stats.get(pid)?.ticks ?? 0;
  return ticks * 10; // USER_HZ is 100 on Linux
}

function report(results: Record<string, Measure[]>, rounds: number, withBase: boolean): void {
  const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]!; };
  const paired = (a: string, b: string, k: keyof Measure): number => median(results[a]!.map((m, i) => m[k] / results[b]![i]![k]));
  console.log(`bench:proxy — ${rounds} interleaved rounds; medians of per-round ratios (wrk -t1 -c32; latency at ${RATE} req/s open-model)`);
  console.log('target       req/s    ×nginx  ×direct   P50 ms  P50−direct  P99 ms  P99 ×nginx  CPU µs/req');
  const rows = Object.keys(results).map((name) => {
    const rps = median(results[name]!.map((m) => m.rps));
    const p50 = median(results[name]!.map((m) => m.p50));
    const p99 = median(results[name]!.map((m) => m.p99));
    const p50direct = median(results[name]!.map((m, i) => m.p50 - results.direct![i]!.p50));
    const cpuUsPerReq = median(results[name]!.map((m) => m.cpuUsPerReq));
    const row = { name, rps, vsNginx: paired(name, 'nginx', 'rps'), vsDirect: paired(name, 'direct', 'rps'), p50, p50MinusDirect: p50direct, p99, p99VsNginx: paired(name, 'nginx', 'p99'), cpuUsPerReq };
    console.log(`${name.padEnd(10)} ${Math.round(rps).toString().padStart(7)}  ${row.vsNginx.toFixed(2).padStart(6)}  ${row.vsDirect.toFixed(2).padStart(7)}  ${p50.toFixed(2).padStart(7)}  ${p50direct.toFixed(2).padStart(10)}  ${p99.toFixed(2).padStart(6)}  ${row.p99VsNginx.toFixed(2).padStart(10)}  ${name === 'direct' ? '-' : cpuUsPerReq.toFixed(1).padStart(10)}`);
    return row;
  });
  const overhead = 1 - paired('changelens', 'no-judge', 'rps');
  console.log(`judge overhead (throughput, changelens vs no-judge): ${(overhead * 100).toFixed(1)} %`);
  console.log(`changelens vs the bare floor (node:http + undici, nothing else): ${paired('changelens', 'bare', 'rps').toFixed(2)}× its throughput; ${(1 / paired('changelens', 'bare', 'cpuUsPerReq')).toFixed(2)}× its requests per CPU second`);
  console.log(`judge overhead (CPU per request, changelens vs no-judge): ${((paired('changelens', 'no-judge', 'cpuUsPerReq') - 1) * 100).toFixed(1)} %`);
  if (withBase) {
    const baseOverhead = 1 - paired('changelens@base', 'no-judge@base', 'rps');
    console.log(`baseline: judge overhead ${(baseOverhead * 100).toFixed(1)} % (CPU per request ${((paired('changelens@base', 'no-judge@base', 'cpuUsPerReq') - 1) * 100).toFixed(1)} %), ${paired('changelens@base', 'bare', 'rps').toFixed(2)}× the bare floor (${(1 / paired('changelens@base', 'bare', 'cpuUsPerReq')).toFixed(2)}× per CPU second)`);
    console.log(`this build ÷ baseline, paired: ${paired('changelens', 'changelens@base', 'rps').toFixed(2)}× throughput, ${paired('changelens', 'changelens@base', 'cpuUsPerReq').toFixed(2)}× CPU per request, ${paired('changelens', 'changelens@base', 'p99').toFixed(2)}× P99 at ${RATE} req/s`);
  }
  const dir = join(packageRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `proxy-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ rounds, rows, judgeOverhead: overhead, ...(withBase ? { baseline: true } : {}), raw: results }, null, 2) + '\n');
  console.log(`wrote ${file}`);
}
