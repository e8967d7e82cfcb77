// The whole appliance, for real: pm2, Postgres, Redis, worker, API and proxy, booted once by
// `changelens up` on free ports and a temp data dir, and shared by the tests of this file, which
// run in order (later tests rely on what earlier ones did: killed processes, stopped appliance).
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { appliancePorts, launchAppliance, portsEnv, type Appliance, type LogRecord } from '../../bench/harness.js';
import { runCli } from '../helpers/cli.js';
import { startLoad } from '../../bench/load.js';
import { readMigrations, reapOrphans } from '../../supervisor/index.js';
import { migrationsDir } from '../../lib/package-root.js';
import { appControlToken } from '../../lib/contracts/app-control.js';

const EXPECTED_AT_BOOT = ['postgres', 'redis', 'worker-blue', 'api-blue', 'proxy'];

function databaseUrl(app: Appliance, db = 'changelens'): string {
  return `postgres://changelens:${encodeURIComponent(app.secrets().pgPassword)}@127.0.0.1:${app.ports.pgPort}/${db}`;
}

async function sql<T extends pg.QueryResultRow>(app: Appliance, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl(app), connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}


const indexOfMsg = (records: LogRecord[], msg: string, from = 0): number => records.findIndex((r, i) => i >= from && r.msg === msg);

interface ConnectionSample { startedAt: number; endedAt: number; status: number; error?: string }

/** Open-model GETs, each on a connection of its own, recording when each started and how it ended. */
function newConnectionLoad(url: string, perSecond: number): { samples: ConnectionSample[]; stop(): Promise<void> } {
  const samples: ConnectionSample[] = [];
  const pending = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const startedAt = Date.now();
    const p = new Promise<void>((resolve) => {
      const req = httpGet(url, { agent: false, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => { samples.push({ startedAt, endedAt: Date.now(), status: res.statusCode ?? 0 }); resolve(); });
        res.on('error', (err: NodeJS.ErrnoException) => { samples.push({ startedAt, endedAt: Date.now(), status: 0, error: err.code ?? err.message }); resolve(); });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TimeoutError' })));
      req.on('error', (err: NodeJS.ErrnoException) => { samples.push({ startedAt, endedAt: Date.now(), status: 0, error: err.code ?? err.message }); resolve(); });
    }).finally(() => pending.delete(p));
    pending.add(p);
  }, 1000 / perSecond);
  return { samples, async stop() { clearInterval(timer); await Promise.all([...pending]); } };
}

describe('the appliance (one embedded appliance, shared)', () => {
  let app: Appliance;
  /** schema_migrations as the first boot wrote it: later boots must not touch it. */
  let firstMigrations: [number, string][] = [];

  beforeAll(async () => {
    app = await launchAppliance();
    await app.ready;
  });

  afterAll(async () => {
    if (app && app.child.exitCode === null) await app.stop('SIGTERM');
    // Whatever a failed test left behind must not outlive the file.
    if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
  });

  it('first boot creates the data dir, secrets (0600) and the database, and logs JSON lines only', async () => {
    const ready = await app.ready;
    expect(ready.firstBoot).toBe(true);
    const secrets = statSync(join(app.dataDir, 'state', 'secrets.json'));
    expect(secrets.mode & 0o777).toBe(0o600);
    expect(Object.keys(app.secrets()).sort()).toEqual(['adminToken', 'backupKey', 'pgPassword', 'redisPassword']);
    expect(existsSync(join(app.dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
    const migrations = await sql<{ version: number; applied_at: Date }>(app, 'SELECT version, applied_at FROM schema_migrations ORDER BY version');
    expect(migrations.map((m) => m.version)).toEqual(readMigrations(migrationsDir).map((m) => m.version));
    firstMigrations = migrations.map((m) => [m.version, m.applied_at.toISOString()]);
    expect(app.nonJson).toEqual([]);
    // Every process speaks through the supervisor's stdout, tagged with its service.
    const services = new Set(app.records.map((r) => r.service));
    for (const s of ['supervisor', 'postgres', 'redis', 'worker', 'api', 'proxy']) expect(services).toContain(s);
    expect(app.records.some((r) => r.service === 'api' && r.color === 'blue')).toBe(true);
    // pm2 writes no log files that could grow.
    const logs = join(app.dataDir, 'state', 'pm2', 'logs');
    if (existsSync(logs)) expect(readdirSync(logs)).toEqual([]);
    // No secret ever reaches the logs.
    const all = JSON.stringify(app.records);
    for (const secret of Object.values(app.secrets())) expect(all).not.toContain(secret);
  });

  it('started each release process only after what it needs was ready; Postgres and Redis side by side; the proxy early, ready after its API', () => {
    const startedAt = (name: string): number => indexOfMsg(app.records, `starting ${name}`);
    const readyAt = (name: string): number => indexOfMsg(app.records, `${name} ready`);
    // Redis needs nothing of Postgres: both start before either is ready.
    expect(startedAt('postgres')).toBeLessThan(readyAt('postgres'));
    expect(startedAt('redis')).toBeLessThan(readyAt('postgres'));
    expect(readyAt('postgres')).toBeLessThan(readyAt('migrations'));
    for (const release of ['api-blue', 'worker-blue']) {
      expect(readyAt('migrations')).toBeLessThan(startedAt(release));
      expect(readyAt('redis')).toBeLessThan(startedAt(release));
    }
    // The proxy waits for the API by itself (its /readyz asks the API's): spawned once the schema is
    // migrated, beside the API, ready after it; the public port opens only once the API is ready.
    expect(readyAt('migrations')).toBeLessThan(startedAt('proxy'));
    expect(startedAt('proxy')).toBeLessThan(readyAt('api-blue'));
    expect(readyAt('api-blue')).toBeLessThan(readyAt('proxy'));
    expect(readyAt('api-blue')).toBeLessThan(indexOfMsg(app.records, 'the supervisor holds the public port; connections are handed to the proxy'));
    expect(startedAt('api-green')).toBe(-1);
    expect(startedAt('worker-green')).toBe(-1);
    // The stages the ready line (and status) reports: every node, each ready after it started.
    const ready = app.records.find((r) => r.service === 'supervisor' && r.msg === 'appliance ready') as { stages?: { name: string; startedMs: number; readyMs: number }[] } | undefined;
    const stages = ready?.stages ?? [];
    expect(stages.map((st) => st.name).sort()).toEqual(['api-blue', 'migrations', 'postgres', 'prepare', 'proxy', 'redis', 'supervisor start', 'worker-blue'].sort());
    for (const st of stages) expect(st.readyMs).toBeGreaterThanOrEqual(st.startedMs);
    const stage = (name: string) => stages.find((st) => st.name === name)!;
    expect(stage('api-blue').startedMs).toBeGreaterThanOrEqual(stage('migrations').readyMs);
    expect(stage('proxy').readyMs).toBeGreaterThanOrEqual(stage('api-blue').readyMs);
  });

  it('serves a request through the proxy to the API, which reads Postgres', async () => {
    await sql(app, "INSERT INTO app.items (category, name, price_cents) VALUES ('books', 'A', 100), ('books', 'B', 200), ('games', 'C', 300)");
    const res = await fetch(`${app.url}/api/data?category=books`);
    expect(res.status).toBe(200);
    const body = await res.json() as { color: string; count: number; items: { name: string }[] };
    expect(body.color).toBe('blue');
    expect(body.items.map((i) => i.name)).toEqual(['A', 'B']);
    const bad = await fetch(`${app.url}/api/data?limit=0`);
    expect(bad.status).toBe(400);
    expect((await bad.json() as { message: string }).message).toContain('limit');
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });

  it('status (--json and readable) shows every process online, Postgres and Redis reachable', async () => {
    const status = await app.status();
    expect(status.phase).toBe('ready');
    expect(status.activeColor).toBe('blue');
    expect(status.dataDir).toBe(app.dataDir);
    expect(status.boot.durationMs).toBeGreaterThan(0);
    expect((status.boot.stages ?? []).map((st) => st.name)).toEqual(expect.arrayContaining(['supervisor start', 'prepare', 'postgres', 'migrations', 'redis', 'api-blue', 'worker-blue', 'proxy']));
    for (const name of EXPECTED_AT_BOOT) {
      const p = status.processes.find((x) => x.name === name);
      expect(p, name).toBeDefined();
      expect(p!.state, name).toBe('online');
      expect(p!.pid, name).toBeGreaterThan(0);
      expect(p!.rssBytes, name).toBeGreaterThan(0);
    }
    expect(status.processes.find((p) => p.name === 'api-green')!.state).toBe('not started');
    expect(status.services.postgres).toMatchObject({ mode: 'embedded', reachable: true });
    expect(status.services.redis).toMatchObject({ mode: 'embedded', reachable: true });
    expect(JSON.stringify(status)).not.toContain(app.secrets().pgPassword);

    const human = await runCli(['status'], app.env);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/ready/);
    // The boot's stages, readable: each with its start and ready time in seconds.
    expect(human.stdout).toMatch(/^boot \(s\) +supervisor start 0\.00→\d+\.\d\d · prepare /m);
    expect(human.stdout).toMatch(/proxy \d+\.\d\d→\d+\.\d\d/);
    for (const name of EXPECTED_AT_BOOT) expect(human.stdout).toMatch(new RegExp(`^${name}\\s+online`, 'm'));
  });

  it('gives each process only the settings and secrets it needs', async () => {
    const envOf = (pid: number): Record<string, string> => {
      const env: Record<string, string> = Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      // pm2's cluster workers receive their env as one JSON variable, applied after start.
      if (env.pm2_env) {
        const pm2Env = JSON.parse(env.pm2_env) as Record<string, unknown> & { env?: Record<string, string> };
        Object.assign(env, ...Object.entries(pm2Env).filter(([, v]) => typeof v === 'string').map(([k, v]) => ({ [k]: v })), pm2Env.env ?? {});
      }
      return env;
    };
    const pids = Object.fromEntries((await app.status()).processes.filter((p) => p.pid).map((p) => [p.name, p.pid!]));
    const token = app.secrets().adminToken;
    expect(envOf(pids.proxy!).CHANGELENS_ADMIN_TOKEN).toBe(token);
    for (const name of ['api-blue', 'worker-blue']) {
      const env = envOf(pids[name]!);
      expect(env.CHANGELENS_ADMIN_TOKEN, name).toBeUndefined();
      expect(env.DATABASE_URL, name).toMatch(/^postgres:\/\//);
    }
    // The built-in API and worker hold their colour's control credential, derived from the token but not it.
    expect(envOf(pids['api-blue']!).CHANGELENS_APP_CONTROL_TOKEN).toBe(appControlToken(token, 'blue'));
    expect(envOf(pids['worker-blue']!).CHANGELENS_APP_CONTROL_TOKEN).toBe(appControlToken(token, 'blue'));
    // Postgres gets none of ours: no URLs, passwords or settings leak in from the supervisor.
    const pg = envOf(pids.postgres!);
    expect(Object.keys(pg).filter((k) => k.startsWith('CHANGELENS_') || k === 'DATABASE_URL' || k === 'REDIS_URL')).toEqual([]);
  });

  it('refuses a second supervisor on the same data dir while this one runs', async () => {
    const second = await runCli(['up'], { ...app.env, ...portsEnv(await appliancePorts()) });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('CL_ERR_ALREADY_RUNNING');
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  });

  it('kill -9 of the API under a GET load: pm2 restarts it, the proxy holds the requests meanwhile, none fails', async () => {
    const before = (await app.status()).processes.find((p) => p.name === 'api-blue')!;
    const load = startLoad(`${app.url}/api/data?limit=5`, 50);
    let restartedAt = 0;
    try {
      await eventually('the load answered', async () => (load.samples.length >= 20 ? true : undefined));
      const killedAt = Date.now();
      process.kill(before.pid!, 'SIGKILL');
      const after = await eventually('api-blue restarted', async () => {
        const p = (await app.status()).processes.find((x) => x.name === 'api-blue')!;
        return p.state === 'online' && p.pid !== before.pid && p.restarts > before.restarts ? p : undefined;
      });
      expect(after.pid).not.toBe(before.pid);
      restartedAt = Date.now();
      // Requests sent after the restart answered too: the colour serves again.
      await eventually('answers after the restart', async () => (load.samples.some((x) => x.startedAt > restartedAt && x.status === 200) ? true : undefined));
      const waited = load.samples.filter((x) => x.startedAt >= killedAt - 100 && x.startedAt <= restartedAt);
      console.log(`api-blue killed: back after ${restartedAt - killedAt} ms; ${waited.length} requests sent meanwhile, the slowest answered in ${Math.max(0, ...waited.map((x) => x.endedAt - x.startedAt))} ms`);
    } finally {
      await load.stop();
    }
    // GETs are held while the colour is down and re-sent to it: a crash costs a wait, not an error.
    expect(load.samples.filter((x) => x.status !== 200)).toEqual([]);
  });

  it('kill -9 of the proxy under load: the port held by the supervisor refuses no connection, only requests inside the proxy fail', async () => {
    const before = await app.status();
    const proxy = before.processes.find((p) => p.name === 'proxy')!;
    expect(before.publicPort).toMatchObject({ listening: true, proxyPid: proxy.pid });
    // A new connection for every request (node:http without an agent: fetch would keep sockets
    // alive, and reusing one the dead proxy held is a client-side race): each is an accept.
    const load = newConnectionLoad(`${app.url}/api/data?limit=5`, 50);
    let back: number;
    try {
      await eventually('the load answered', async () => (load.samples.length >= 20 ? true : undefined));
      const killedAt = Date.now();
      process.kill(proxy.pid!, 'SIGKILL');
      const restarted = await eventually('the proxy restarted and taking connections', async () => {
        const s = await app.status();
        const p = s.processes.find((x) => x.name === 'proxy')!;
        return p.state === 'online' && p.pid !== proxy.pid && s.publicPort?.proxyPid === p.pid ? s : undefined;
      });
      back = Date.now();
      await eventually('answers after the restart', async () => (load.samples.some((x) => x.startedAt > back && x.status === 200) ? true : undefined));
      const gone = await app.waitForRecord((r) => r.msg === 'the proxy is gone; new connections wait for the next one' && r.proxyPid === proxy.pid);
      const lostAt = Date.parse(gone.time as string);
      console.log(`proxy killed: taking connections again after ${back - killedAt} ms (supervisor saw the loss ${lostAt - killedAt} ms after the kill); ${restarted.publicPort!.waited} connections waited; ${load.samples.filter((x) => x.status !== 200).length} requests failed`);
      expect(restarted.publicPort!.waited).toBeGreaterThan(0);
      expect(restarted.publicPort!.refused).toBe(0);
      await load.stop();
      const failed = load.samples.filter((x) => x.status !== 200);
      expect(failed.filter((x) => x.error === 'ECONNREFUSED'), 'no connection refused').toEqual([]);
      expect(failed.filter((x) => x.error === 'TimeoutError'), 'no connection left hanging').toEqual([]);
      // Only requests that were inside the proxy, or on their way to it before the supervisor saw it die.
      expect(failed.filter((x) => x.startedAt > lostAt)).toEqual([]);
      expect(failed.length).toBeLessThanOrEqual(5);
    } finally {
      await load.stop();
    }
  });

  it('kill -9 of Postgres: it comes back and committed rows are intact', async () => {
    await sql(app, "INSERT INTO app.items (category, name, price_cents) VALUES ('durable', 'committed-before-kill', 42)");
    const before = (await app.status()).processes.find((p) => p.name === 'postgres')!;
    process.kill(before.pid!, 'SIGKILL');
    await eventually('postgres restarted by pm2', async () => {
      const p = (await app.status()).processes.find((x) => x.name === 'postgres')!;
      return p.state === 'online' && p.pid !== before.pid ? p : undefined;
    }, 45_000);
    const rows = await eventually('postgres answering', () => sql<{ name: string }>(app, "SELECT name FROM app.items WHERE category = 'durable'"), 45_000);
    expect(rows.map((r) => r.name)).toEqual(['committed-before-kill']);
    // The API's pool recovers by itself: a request through the proxy reads Postgres again.
    await eventually('the API reading Postgres again', async () => {
      const res = await fetch(`${app.url}/api/data?category=durable`);
      return res.status === 200 ? ((await res.json()) as { count: number }).count === 1 || undefined : undefined;
    });
  });

  it('kill -9 of Redis under load: no GET fails, no API or worker restarts, a job meanwhile is refused at once, jobs run again after', async () => {
    const before = (await app.status()).processes;
    const of = (list: typeof before, name: string) => list.find((p) => p.name === name)!;
    const load = startLoad(`${app.url}/api/data?limit=5`, 50);
    let refused: Response;
    try {
      await eventually('the load answered', async () => (load.samples.length >= 20 ? true : undefined));
      process.kill(of(before, 'redis').pid!, 'SIGKILL');
      // A job while Redis is away: answered at once, 503 naming Redis, never accepted and lost.
      refused = await fetch(`${app.url}/api/process`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"workMs":10}', signal: AbortSignal.timeout(5_000) });
      await eventually('redis restarted by pm2', async () => {
        const p = of((await app.status()).processes, 'redis');
        return p.state === 'online' && p.pid !== of(before, 'redis').pid ? p : undefined;
      }, 45_000);
      // The API reconnected by itself: its readiness (Postgres and Redis) passes again.
      await eventually('the API ready again', async () => ((await fetch(`${app.url}/readyz`)).status === 200 ? true : undefined), 30_000);
    } finally {
      await load.stop();
    }
    expect(load.samples.filter((s) => s.status !== 200), '/api/data needs only Postgres').toEqual([]);
    const after = (await app.status()).processes;
    for (const name of ['api-blue', 'worker-blue', 'proxy']) {
      expect({ name, restarts: of(after, name).restarts, pid: of(after, name).pid }).toEqual({ name, restarts: of(before, name).restarts, pid: of(before, name).pid });
    }
    // Pm2 may have had Redis back before the job arrived: then it was accepted, and must be done.
    const first = await refused!.json() as { code?: string; id?: string };
    const accepted: string[] = [];
    if (refused!.status === 503) {
      expect(first.code).toBe('CL_ERR_DEPENDENCY_UNAVAILABLE');
      expect(refused!.headers.get('retry-after')).toBe('1');
    } else {
      expect(refused!.status).toBe(202);
      accepted.push(first.id!);
    }
    const next = await fetch(`${app.url}/api/process`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"workMs":10}' });
    expect(next.status).toBe(202);
    accepted.push(((await next.json()) as { id: string }).id);
    for (const id of accepted) {
      await eventually(`task ${id} completed`, async () => {
        const task = await (await fetch(`${app.url}/api/tasks/${id}`)).json() as { state: string };
        return task.state === 'completed' ? true : undefined;
      }, 30_000);
    }
  });

  it('kill -9 of the supervisor: the next up stops what it left running, then boots on the same data', async () => {
    const before = (await app.status()).processes.find((p) => p.name === 'postgres')!;
    app.child.kill('SIGKILL');
    await app.exited;
    // pm2's children are detached: Postgres outlives the supervisor and still holds its port.
    expect(() => process.kill(before.pid!, 0)).not.toThrow();
    app = await launchAppliance({ dataDir: app.dataDir, ports: app.ports });
    await app.ready;
    const reaped = app.records.find((r) => r.msg === 'stopped processes left running by a supervisor that did not shut down');
    expect((reaped?.orphans as { name: string }[] | undefined)?.map((o) => o.name)).toContain('postgres');
    // Gone: no such process, or a zombie that only its new parent (init here) has yet to reap — it
    // holds no port and no lock (the boot that just finished proves it).
    const state = (() => {
      try {
        const stat = readFileSync(`/proc/${before.pid!}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      } catch {
        return 'gone';
      }
    })();
    expect(['gone', 'Z']).toContain(state);
    expect((await sql<{ name: string }>(app, "SELECT name FROM app.items WHERE category = 'durable'")).map((r) => r.name)).toEqual(['committed-before-kill']);
  });

  it('external mode: a second appliance uses this one\'s Postgres and Redis and starts neither', async () => {
    const external = await launchAppliance({
      env: {
        DATABASE_URL: databaseUrl(app),
        REDIS_URL: `redis://default:${encodeURIComponent(app.secrets().redisPassword)}@127.0.0.1:${app.ports.redisPort}`,
      },
    });
    try {
      await external.ready;
      const status = await external.status();
      expect(status.services.postgres).toMatchObject({ mode: 'external', reachable: true, endpoint: `127.0.0.1:${app.ports.pgPort}` });
      expect(status.services.redis).toMatchObject({ mode: 'external', reachable: true, endpoint: `127.0.0.1:${app.ports.redisPort}` });
      expect(status.processes.find((p) => p.name === 'postgres')!.state).toBe('external');
      expect(status.processes.find((p) => p.name === 'redis')!.state).toBe('external');
      expect(existsSync(join(external.dataDir, 'postgres'))).toBe(false);
      const res = await fetch(`${external.url}/api/data?category=durable`);
      expect(((await res.json()) as { items: { name: string }[] }).items.map((i) => i.name)).toEqual(['committed-before-kill']);
      expect(external.records.some((r) => r.msg === 'migrations up to date')).toBe(true);
    } finally {
      const { code } = await external.stop('SIGTERM');
      expect(code).toBe(0);
    }
    // Stopping the external-mode appliance leaves the services it used alone.
    expect((await sql<{ one: number }>(app, 'SELECT 1 AS one'))[0]!.one).toBe(1);
  });

  it('SIGTERM with requests in flight: none is dropped, stop is ordered, Postgres shuts down cleanly, exit 0', async () => {
    const from = app.records.length;
    const inFlight = Array.from({ length: 20 }, () => fetch(`${app.url}/api/work?ms=1500`).then(async (r) => ({ status: r.status, body: await r.json() as { ms: number } })));
    await new Promise((r) => setTimeout(r, 400));
    const stopped = app.stop('SIGTERM');
    const results = await Promise.all(inFlight);
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    for (const r of results) expect(r.body.ms).toBeGreaterThanOrEqual(1400);
    const { code, ms } = await stopped;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(8_000);
    // The order as the processes themselves report their exit, not as the supervisor logs it.
    const own = (service: string, pattern: RegExp): number => app.records.findIndex((r, i) => i >= from && r.service === service && pattern.test(String(r.msg)));
    const proxy = own('proxy', /^stopped$/);
    const api = own('api', /^stopped$/);
    const worker = own('worker', /^stopped$/);
    const redis = own('redis', /ready to exit/i);
    const postgres = own('postgres', /database system is shut down/);
    for (const [name, at] of Object.entries({ proxy, api, worker, redis, postgres })) expect(at, `${name}: ${JSON.stringify(app.records.slice(from).filter((r) => r.service === name).map((r) => r.msg))}`).toBeGreaterThanOrEqual(0);
    expect(proxy).toBeLessThan(api);
    expect(proxy).toBeLessThan(worker);
    // Postgres and Redis need nothing of each other: they stop together, after everything that needs them.
    expect(Math.max(api, worker)).toBeLessThan(redis);
    expect(Math.max(api, worker)).toBeLessThan(postgres);
    expect(app.records.slice(from).some((r) => r.service === 'redis' && /DB saved on disk|ready to exit/i.test(r.msg ?? ''))).toBe(true);
  });

  it('the next boot reuses the data: no initdb, same secrets, rows and migrations intact', async () => {
    const secrets = app.secrets();
    app = await launchAppliance({ dataDir: app.dataDir, ports: app.ports });
    await app.ready;
    expect((await app.ready).firstBoot).toBe(false);
    expect(app.records.some((r) => typeof r.msg === 'string' && r.msg.startsWith('first boot'))).toBe(false);
    expect(app.secrets()).toEqual(secrets);
    expect((await sql<{ name: string }>(app, "SELECT name FROM app.items WHERE category = 'durable'")).map((r) => r.name)).toEqual(['committed-before-kill']);
    const migrations = await sql<{ version: number; applied_at: Date }>(app, 'SELECT version, applied_at FROM schema_migrations ORDER BY version');
    expect(migrations.map((m) => [m.version, m.applied_at.toISOString()])).toEqual(firstMigrations);
    expect(app.records.some((r) => r.msg === 'migrations up to date')).toBe(true);
  });

  it('a failing dependency stops the boot with an error naming it and its last log lines, exit ≠ 0', async () => {
    const { code } = await app.stop('SIGTERM');
    expect(code).toBe(0);
    const autoConf = join(app.dataDir, 'postgres', 'postgresql.auto.conf');
    const original = readFileSync(autoConf, 'utf8');
    writeFileSync(autoConf, original + "shared_buffers = 'lots'\n");
    try {
      const failed = await runCli(['up'], app.env, 90_000);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('CL_ERR_DEPENDENCY_FAILED: postgres did not become ready');
      expect(failed.stderr).toContain('--- last log lines of postgres ---');
      expect(failed.stderr).toContain('shared_buffers');
      // The stages so far, in the failure's log line: Postgres started and never ready, nothing that needs it started.
      const record = failed.stdout.split('\n').flatMap((l) => { try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } })
        .find((r) => r.msg === 'boot failed; stopping what started') as { stages?: Array<{ name: string; startedMs: number; readyMs: number | null }> } | undefined;
      const stages = record?.stages ?? [];
      expect(stages.find((s) => s.name === 'postgres'), JSON.stringify(stages)).toMatchObject({ readyMs: null });
      expect(stages.map((s) => s.name)).not.toContain('api-blue');
      // Nothing that started stays behind.
      expect(await reapOrphans(join(app.dataDir, 'state', 'pm2'))).toEqual([]);
    } finally {
      writeFileSync(autoConf, original);
    }
  });
});
