// A fleet on one machine, for the fleet test and bench:fleet: one Postgres (the project's own
// scratch one) and one Redis (redis-server), appliances in external mode on their own ports, and
// nginx round-robin in front of them (the load balancer a platform would be).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapOrphans } from '../supervisor/index.js';
import { adminCall, freePorts, launchAppliance, type Appliance } from './harness.js';
import { startScratchPostgres, type ScratchPostgres } from './scratch-postgres.js';

export interface FleetHarness {
  postgresUrl: string;
  redisUrl: string;
  /** The admin token every instance shares. */
  token: string;
  instances: Map<string, Appliance>;
  /** Boots an instance (ready when this resolves). */
  launch(id: string): Promise<Appliance>;
  /** The instances not killed or stopped. */
  live(): Appliance[];
  /** nginx in front of the instances launched so far (again: restarted over the current set). */
  balance(): Promise<string>;
  api(app: Appliance, method: string, path: string, body?: unknown): Promise<any>;
  /** The whole machine of an instance: its supervisor and every process pm2 runs for it, kill -9. */
  kill(app: Appliance): Promise<number>;
  stop(): Promise<void>;
}

const REDIS_PASSWORD = 'fleet-redis-password';

export async function startFleetHarness(env: Record<string, string> = {}): Promise<FleetHarness> {
  const scratch = mkdtempSync(join(tmpdir(), 'changelens-fleet-'));
  const postgres: ScratchPostgres = await startScratchPostgres();
  const [redisPort, nginxPort] = await freePorts(2);
  const redis: ChildProcess = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--requirepass', REDIS_PASSWORD, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const redisUrl = `redis://default:${REDIS_PASSWORD}@127.0.0.1:${redisPort}`;
  const token = 'fleet-admin-token-0123456789-abcdefghijklmnop';
  const instances = new Map<string, Appliance>();
  let nginx: ChildProcess | null = null;
  const live = (): Appliance[] => [...instances.values()].filter((a) => a.child.exitCode === null && a.child.signalCode === null);

  const stopNginx = async (): Promise<void> => {
    const n = nginx;
    nginx = null;
    if (!n || n.exitCode !== null) return;
    const exited = new Promise((r) => n.once('exit', r));
    n.kill('SIGTERM');
    await exited;
  };

  return {
    postgresUrl: postgres.url, redisUrl, token, instances, live,
    async launch(id) {
      const app = await launchAppliance({ env: { DATABASE_URL: postgres.url, REDIS_URL: redisUrl, CHANGELENS_ADMIN_TOKEN: token, CHANGELENS_INSTANCE_ID: id, ...env } });
      instances.set(id, app);
      await app.ready;
      return app;
    },
    async balance() {
      await stopNginx();
      const upstreams = [...instances.values()].map((a) => `server 127.0.0.1:${a.ports.port};`).join(' ');
      writeFileSync(join(scratch, 'nginx.conf'), `worker_processes 1; pid ${scratch}/nginx.pid; error_log ${scratch}/error.log; user root;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${scratch}/body; proxy_temp_path ${scratch}/proxy;
  fastcgi_temp_path ${scratch}/fcgi; uwsgi_temp_path ${scratch}/uwsgi; scgi_temp_path ${scratch}/scgi;
  upstream fleet { ${upstreams} keepalive 32; }
  server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://fleet; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_next_upstream error timeout; } } }
`);
      nginx = spawn('nginx', ['-p', scratch, '-c', join(scratch, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' });
      const url = `http://127.0.0.1:${nginxPort}`;
      for (const deadline = Date.now() + 30_000; ;) {
        const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
        if (ok) return url;
        if (Date.now() > deadline) throw new Error('nginx did not answer in front of the fleet');
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    api: (app, method, path, body) => adminCall(app.url, token, method, path, body),
    async kill(app) {
      const pids = (await app.status()).processes.map((p) => p.pid).filter((p): p is number => typeof p === 'number');
      const at = Date.now();
      app.child.kill('SIGKILL');
      for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
      await app.exited;
      return at;
    },
    async stop() {
      await stopNginx();
      await Promise.all([...instances.values()].map(async (app) => {
        if (app.child.exitCode === null && app.child.signalCode === null) await app.stop('SIGTERM');
        await reapOrphans(join(app.dataDir, 'state', 'pm2'));
      }));
      redis.kill('SIGTERM');
      await postgres.stop();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
