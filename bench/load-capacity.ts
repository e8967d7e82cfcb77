// npm run bench:load [-- --workers 1,2,3 --seconds 8 --max-lag-ms 1 --timing precise|timer]: how fast the load generator's
// workers go here. For 1, 2 and 3 `changelens bench worker` processes joined to one coordinator
// (redis-server on loopback), it raises the open-model rate step by step against Debian's nginx
// answering 200 from memory (the cheapest target, so the box's cores go to the generator) and
// reports the highest rate whose send lag — each request's actual send after its intended time, the
// generator's own error — stays under the bound at P99, and the highest it keeps at all (every
// request sent, lag P99 under 10 ms), with the machine's CPU use at each.
// Everything shares this machine's cores: the figures are a floor for one core per worker, not what
// N machines give.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cliPath, freePorts } from './harness.js';
import { runDistributed, type DistributedResult } from './distributed/client.js';
import { formatJoin, newToken, type JoinInfo } from './distributed/protocol.js';

const { values } = parseArgs({ options: { workers: { type: 'string', default: '1,2,3' }, seconds: { type: 'string', default: '8' }, 'max-lag-ms': { type: 'string', default: '1' }, timing: { type: 'string', default: 'precise' } } });
const timing = values.timing === 'timer' ? 'timer' : 'precise';
/** Past this send lag (P99) the rate counts as not kept at all. */
const KEPT_LAG_MS = 10;
const counts = values.workers.split(',').map(Number);
const seconds = Number(values.seconds);
const maxLagMs = Number(values['max-lag-ms']);
/** Per worker: the target answers in well under a millisecond, so a few dozen carry any rate here. */
const CONNECTIONS = 64;
const RATES = [500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000, 14000, 16000, 20000, 24000, 28000, 32000];

/** Busy and total jiffies of the whole machine, from /proc/stat. */
function cpuTimes(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

async function main(): Promise<void> {
  const procs: ChildProcess[] = [];
  const [redisPort, targetPort] = await freePorts(2);
  const password = newToken();
  procs.push(spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
  const dir = mkdtempSync(join(tmpdir(), 'bench-load-'));
  writeFileSync(join(dir, 'nginx.conf'), `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${targetPort}; keepalive_requests 1000000; location / { return 200 'ok'; } } }
`);
  procs.push(spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'inherit' }));
  const joinInfo: JoinInfo = { redisUrl: `redis://default:${password}@127.0.0.1:${redisPort}`, coordinator: 'capacity', token: newToken() };
  await new Promise((r) => setTimeout(r, 500));
  const coordinator = spawn(process.execPath, [cliPath, 'bench', 'coordinator', '--redis', joinInfo.redisUrl, '--id', joinInfo.coordinator, '--token', joinInfo.token, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(coordinator);
  let coordinatorOut = '';
  coordinator.stdout!.setEncoding('utf8').on('data', (c: string) => (coordinatorOut += c));
  const joinedCount = (): number => coordinatorOut.split('\n').filter((l) => l.includes('"event":"joined"')).length - coordinatorOut.split('\n').filter((l) => /"event":"(left|failed)"/.test(l)).length;
  const waitFor = async (ok: () => boolean, what: string): Promise<void> => {
    for (const deadline = performance.now() + 30_000; !ok();) {
      if (performance.now() > deadline) throw new Error(`${what}: not within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await waitFor(() => coordinatorOut.includes('"join"'), 'the coordinator started');
  const joinString = formatJoin(joinInfo);
  const rows: { workers: number; rate: number; sent: number; achieved: number; lagP50Ms: number; lagP99Ms: number; latencyP99Ms: number; cpu: number; ok: boolean; kept: boolean }[] = [];
  try {
    for (const n of counts) {
      const workers: ChildProcess[] = [];
      for (let k = 0; k < n; k++) workers.push(spawn(process.execPath, [cliPath, 'bench', 'worker', '--join', joinString, '--name', `cap${k}`, '--max-rate', '100000'], { stdio: 'ignore' }));
      procs.push(...workers);
      await waitFor(() => joinedCount() === n, `${n} workers joined`);
      // A first run warms the workers (JIT, the connection pools' first sockets); it is not reported.
      await runDistributed({ target: `http://127.0.0.1:${targetPort}`, rate: 1000, durationSeconds: 3, mix: [{ method: 'GET', path: '/', weight: 1 }], connections: CONNECTIONS }, joinInfo);
      for (const rate of RATES) {
        const before = cpuTimes();
        const r: DistributedResult = await runDistributed({ target: `http://127.0.0.1:${targetPort}`, rate, durationSeconds: seconds, mix: [{ method: 'GET', path: '/', weight: 1 }], connections: CONNECTIONS, timing }, joinInfo);
        const after = cpuTimes();
        const cpu = (after.busy - before.busy) / Math.max(1, after.total - before.total);
        const kept = r.sent >= r.distributed.planned * 0.99 && r.failed === 0 && r.sendLag.p99Ms < KEPT_LAG_MS;
        const ok = kept && r.sendLag.p99Ms < maxLagMs;
        const row = { workers: n, rate, sent: r.sent, achieved: Math.round(r.distributed.achievedRate), lagP50Ms: r.sendLag.p50Ms, lagP99Ms: r.sendLag.p99Ms, latencyP99Ms: r.latency.p99Ms, cpu, ok, kept };
        rows.push(row);
        console.log(`${n} worker(s)  ${String(rate).padStart(6)} req/s  achieved ${String(row.achieved).padStart(6)}  send lag P50 ${row.lagP50Ms.toFixed(3)} ms  P99 ${row.lagP99Ms.toFixed(3)} ms  latency P99 ${row.latencyP99Ms.toFixed(2)} ms  CPU ${(cpu * 100).toFixed(0)} %  ${ok ? 'ok' : kept ? 'kept' : 'not kept'}`);
        // Past the bound, the steps go on to show how it degrades, until the rate is not kept at all.
        if (!kept) break;
      }
      for (const w of workers) w.kill('SIGTERM');
      await waitFor(() => joinedCount() === 0, 'the workers left');
    }
  } finally {
    for (const p of procs.reverse()) p.kill('SIGTERM');
  }
  console.log(`\n${timing} timing, ${seconds} s per step, this machine's cores shared by everything:`);
  const describe = (r: (typeof rows)[number] | undefined): string => (r ? `${r.rate} req/s (send lag P99 ${r.lagP99Ms.toFixed(3)} ms, CPU ${(r.cpu * 100).toFixed(0)} %)` : 'none of the steps');
  const summary = counts.map((n) => {
    const mine = rows.filter((r) => r.workers === n).sort((a, b) => a.rate - b.rate);
    const best = mine.filter((r) => r.ok).at(-1);
    const most = mine.filter((r) => r.kept).at(-1);
    console.log(`  ${n} worker(s): send lag P99 under ${maxLagMs} ms up to ${describe(best)}; kept up to ${describe(most)}`);
    return { workers: n, bestRate: best?.rate ?? null, bestCpu: best?.cpu ?? null, keptRate: most?.rate ?? null, keptCpu: most?.cpu ?? null };
  });
  const out = join(process.cwd(), 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `load-capacity-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ timing, seconds, maxLagMs, rows, summary }, null, 2) + '\n');
  console.log(`wrote ${file}`);
}

await main();
