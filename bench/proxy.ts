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
//   npm run bench:proxy [-- --rounds 5 --seconds 4]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { createLogger } from '../lib/logger.js';
import { initTracing } from '../lib/tracing.js';
import { packageRoot } from '../lib/package-root.js';
import { createProxyMetrics, SlicedWindow } from '../monitoring/index.js';
import { buildProxyServer } from '../proxy/server.js';
import type { RoutingTable } from '../lib/contracts/routing.js';
import { freePorts } from './harness.js';
import { runLoad } from './loadgen.js';

const { values } = parseArgs({ options: { role: { type: 'string' }, port: { type: 'string' }, blue: { type: 'string' }, green: { type: 'string' }, rounds: { type: 'string', default: '5' }, seconds: { type: 'string', default: '4' } } });
const CANARY: RoutingTable = { stable: 'blue', candidate: 'green', candidateWeight: 0.1, rolloutId: 'bench' };
const RATE = 1_000;

if (values.role) await child(values.role, Number(values.port), Number(values.blue), Number(values.green));
else await main(Number(values.rounds), Number(values.seconds));

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
  // As in production: the OpenTelemetry SDK is registered (recording spans, no exporter), so the
  // trace ids in logs and the traceparent to the API cost what they cost in the appliance.
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
interface Measure { rps: number; p50: number; p99: number }

async function main(rounds: number, seconds: number): Promise<void> {
  const [blue, green, direct, lens, noJudge, stock, bare, nginxPort] = await freePorts(8);
  const self = fileURLToPath(import.meta.url);
  const procs: ChildProcess[] = [];
  const start = (role: string, port: number): ChildProcess => {
    const args = process.env.CHANGELENS_BENCH_PROFILE === role ? ['--cpu-prof', `--cpu-prof-dir=${join(packageRoot, 'bench', 'results')}`] : [];
    const p = spawn(process.execPath, [...args, self, '--role', role, '--port', String(port), '--blue', String(blue), '--green', String(green)], { stdio: 'inherit' });
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
        const rps = wrk(url, seconds);
        const { origin, pathname } = new URL(url);
        const { latency } = await runLoad({ target: origin, rate: RATE, durationSeconds: seconds, mix: [{ method: 'GET', path: pathname, weight: 1 }], connections: 64 });
        const { p50Ms: p50, p99Ms: p99 } = latency;
        results[t.name]!.push({ rps, p50, p99 });
        process.stderr.write(`round ${round} ${t.name.padEnd(10)} ${Math.round(rps)} req/s, at ${RATE} req/s P50 ${p50.toFixed(2)} ms P99 ${p99.toFixed(2)} ms\n`);
      }
    }
    report(results, rounds);
  } finally {
    for (const p of procs) p.kill('SIGTERM');
  }
}

/** wrk's maximum throughput, one thread, 32 connections. */
function wrk(url: string, seconds: number): number {
  const r = spawnSync('wrk', ['-t1', '-c32', `-d${seconds}s`, url], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`wrk failed: ${r.stderr || r.stdout}`);
  return Number(m[1]);
}

function report(results: Record<string, Measure[]>, rounds: number): void {
  const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]!; };
  const paired = (a: string, b: string, k: keyof Measure): number => median(results[a]!.map((m, i) => m[k] / results[b]![i]![k]));
  console.log(`bench:proxy — ${rounds} interleaved rounds; medians of per-round ratios (wrk -t1 -c32; latency at ${RATE} req/s open-model)`);
  console.log('target       req/s    ×nginx  ×direct   P50 ms  P50−direct  P99 ms  P99 ×nginx');
  const rows = Object.keys(results).map((name) => {
    const rps = median(results[name]!.map((m) => m.rps));
    const p50 = median(results[name]!.map((m) => m.p50));
    const p99 = median(results[name]!.map((m) => m.p99));
    const p50direct = median(results[name]!.map((m, i) => m.p50 - results.direct![i]!.p50));
    const row = { name, rps, vsNginx: paired(name, 'nginx', 'rps'), vsDirect: paired(name, 'direct', 'rps'), p50, p50MinusDirect: p50direct, p99, p99VsNginx: paired(name, 'nginx', 'p99') };
    console.log(`${name.padEnd(10)} ${Math.round(rps).toString().padStart(7)}  ${row.vsNginx.toFixed(2).padStart(6)}  ${row.vsDirect.toFixed(2).padStart(7)}  ${p50.toFixed(2).padStart(7)}  ${p50direct.toFixed(2).padStart(10)}  ${p99.toFixed(2).padStart(6)}  ${row.p99VsNginx.toFixed(2).padStart(10)}`);
    return row;
  });
  const overhead = 1 - paired('changelens', 'no-judge', 'rps');
  console.log(`judge overhead (throughput, changelens vs no-judge): ${(overhead * 100).toFixed(1)} %`);
  console.log(`changelens vs the bare floor (node:http + undici, nothing else): ${paired('changelens', 'bare', 'rps').toFixed(2)}× its throughput`);
  const dir = join(packageRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `proxy-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ rounds, rows, judgeOverhead: overhead, raw: results }, null, 2) + '\n');
  console.log(`wrote ${file}`);
}
