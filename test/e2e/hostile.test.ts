// Hostile input against the real appliance (issue 17), one appliance for the file, booted as CI
// boots it (root). A release is untrusted code: the built-in API and an uploaded app run as the
// release user with only the env they are given, and an app that tries every way out (the
// appliance's files, pm2, the supervisor's socket, root, the appliance's tables, Redis's admin
// commands) is refused each time while its own data works. And the admin API, fuzzed with random
// paths, methods, headers and bodies: never a 5xx, never a change when it answers 4xx.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, launchAppliance, type Appliance } from '../../bench/harness.js';
import { packageRoot } from '../../lib/package-root.js';
import { queryControl, reapOrphans } from '../../supervisor/index.js';
import { eventually } from '../helpers/eventually.js';

const isRoot = process.getuid?.() === 0;
/** What the operator exported into the supervisor's env: none of it may reach a release. */
const OPERATOR_SECRET = 'operator-cloud-secret-5b1f0c2e';

/** An app that tries the ways out and reports what happened (CommonJS, no dependency of its own). */
const PROBE_APP = String.raw`
const http = require('node:http');
const fs = require('node:fs');
const net = require('node:net');
const { join } = require('node:path');
const modules = process.env.PROBE_MODULES;
const pg = require(join(modules, 'pg'));
const { createClient } = require(join(modules, '@redis/client'));
const data = process.env.PROBE_DATA;

function attempt(fn) {
  try { fn(); return 'allowed'; } catch (err) { return err.code || err.message; }
}
async function attemptAsync(fn) {
  try { await fn(); return 'allowed'; } catch (err) { return err.code || err.message; }
}
function connectSocket(path) {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); resolve('allowed'); });
    s.once('error', (err) => resolve(err.code));
  });
}

/** A listen() a cluster worker asks its primary (the root supervisor) to carry out. */
function tryListen(options) {
  return new Promise((resolve) => {
    const server = net.createServer();
    const timer = setTimeout(() => resolve('no answer'), 2000);
    server.once('listening', () => { clearTimeout(timer); server.close(); resolve('allowed'); });
    server.once('error', (err) => { clearTimeout(timer); resolve(err.code || err.message); });
    server.listen(options);
  });
}

async function probe() {
  const out = {
    uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(),
    env: Object.keys(process.env).sort(),
    secrets: attempt(() => fs.readFileSync(join(data, 'state', 'secrets.json'))),
    routing: attempt(() => fs.readFileSync(join(data, 'state', 'proxy', 'routing.json'))),
    pm2Home: attempt(() => fs.readdirSync(join(data, 'state', 'pm2'))),
    backups: attempt(() => fs.readdirSync(join(data, 'backups'))),
    postgresFiles: attempt(() => fs.readdirSync(join(data, 'postgres'))),
    supervisorSocket: await connectSocket(join(data, 'state', 'supervisor.sock')),
    ownCode: attempt(() => fs.writeFileSync(join(__dirname, 'planted.js'), 'x')),
    becomeRoot: attempt(() => process.setuid(0)),
    supervisorEnviron: attempt(() => fs.readFileSync('/proc/' + process.env.PROBE_SUPERVISOR + '/environ')),
  };
  // The supervisor's own sockets by number (its public port, its Postgres connection…), another
  // port, a Unix socket: none may be had through the cluster channel.
  const fds = await Promise.all(Array.from({ length: 100 }, (_, i) => tryListen({ fd: i + 3 })));
  out.listenFd = fds.filter((r) => r === 'allowed').length;
  out.listenOtherPort = await tryListen({ port: 0, host: '127.0.0.1' });
  out.listenUnix = await tryListen({ path: join('/tmp', 'probe-' + process.pid + '.sock') });
  const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  out.dbUser = (await db.query('SELECT current_user AS u')).rows[0].u;
  out.ownTable = await attemptAsync(() => db.query('CREATE TABLE IF NOT EXISTS probe_notes (n int); INSERT INTO probe_notes VALUES (1)'));
  out.items = await attemptAsync(() => db.query('SELECT count(*) FROM items'));
  out.releasesTable = await attemptAsync(() => db.query('SELECT * FROM public.releases'));
  out.auditInsert = await attemptAsync(() => db.query("INSERT INTO public.audit_events (event_id, event_type, actor, success) VALUES ('x', 'forged', 'app', true)"));
  out.pointersUpdate = await attemptAsync(() => db.query("UPDATE public.pointers SET version = 'evil'"));
  out.createRole = await attemptAsync(() => db.query('CREATE ROLE escape SUPERUSER'));
  await db.end();
  const redis = createClient({ url: process.env.REDIS_URL });
  redis.on('error', () => {});
  await redis.connect();
  const command = (args) => attemptAsync(() => redis.sendCommand(args)).then((r) => r.startsWith('NOPERM') ? 'NOPERM' : r);
  out.redisSet = await command(['SET', 'probe:key', '1']);
  out.redisConfig = await command(['CONFIG', 'GET', 'requirepass']);
  out.redisFlush = await command(['FLUSHALL']);
  out.redisAcl = await command(['ACL', 'LIST']);
  await redis.quit();
  return out;
}

http.createServer((req, res) => {
  if (req.url === '/readyz') return res.end('ok');
  probe().then((r) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(r)); },
    (err) => { res.statusCode = 500; res.end(String(err.stack)); });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/** The uid, gid and supplementary groups of a process, from /proc (read as root). */
function credentialsOf(pid: number): { uid: number; gid: number; groups: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number[] => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  return { uid: field('Uid')[0]!, gid: field('Gid')[0]!, groups: field('Groups') };
}

describe('hostile input', () => {
  let app: Appliance;
  let release: { uid: number; gid: number };

  beforeAll(async () => {
    if (isRoot) release = { uid: Number(execFileSync('id', ['-u', 'changelens-app'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'changelens-app'], { encoding: 'utf8' })) };
    app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '50', AWS_SECRET_ACCESS_KEY: OPERATOR_SECRET, CHANGELENS_BACKUP_KEY: 'backup-key-that-is-long-enough-0123456789' } });
    await app.ready;
  }, 180_000);

  afterAll(async () => {
    await app?.stop();
    if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
  }, 60_000);

  it.runIf(isRoot)('runs the built-in API as the release user, in no other group, with none of the supervisor\'s env in its memory', async () => {
    const status = await app.status();
    expect(status.confinement).toMatchObject({ user: { name: 'changelens-app', uid: release.uid, gid: release.gid } });
    const pid = status.processes.find((p) => p.name === 'api-blue')!.pid!;
    expect(credentialsOf(pid)).toEqual({ uid: release.uid, gid: release.gid, groups: [release.gid] });
    // The env block the process was started with (what a native addon could read from its stack;
    // pm2's own bookkeeping, paths, is there too, and the entry deletes it before the release runs).
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    for (const secret of [OPERATOR_SECRET, app.secrets().adminToken, app.secrets().pgPassword, app.secrets().redisPassword, 'backup-key-that-is-long-enough']) {
      expect(environ, secret).not.toContain(secret);
    }
    // And it serves, from the app's own schema.
    const res = await fetch(`${app.url}/api/data?category=cat-01`);
    expect(res.status).toBe(200);
  });

  it.runIf(isRoot)('refuses an uploaded app every way out, and gives it its own data', async () => {
    const dir = join(app.dataDir, 'releases', 'probe');
    mkdirSync(dir, { mode: 0o755 });
    writeFileSync(join(dir, 'server.js'), PROBE_APP, { mode: 0o644 });
    const sets = [`PROBE_MODULES=${join(packageRoot, 'node_modules')}`, `PROBE_DATA=${app.dataDir}`, `PROBE_SUPERVISOR=${app.child.pid}`].map((p) => `set=${encodeURIComponent(p)}`).join('&');
    await queryControl(join(app.dataDir, 'state', 'supervisor.sock'), `/processes/api-green/start?artifact=${encodeURIComponent(dir)}&${sets}`, app.dataDir, { method: 'POST', timeoutMs: 90_000 });
    const res = await eventually('the probe answering', async () => {
      const r = await fetch(`http://127.0.0.1:${app.ports.apiGreenPort}/probe`);
      if (r.status !== 200) throw new Error(`${r.status} ${await r.text()}`);
      return r.json() as Promise<Record<string, unknown>>;
    }, 30_000);

    expect(res).toMatchObject({ uid: release.uid, gid: release.gid, groups: [release.gid] });
    expect(res.env).toEqual(expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'PORT', 'PROBE_DATA', 'PROBE_MODULES']));
    for (const name of res.env as string[]) expect(name).toMatch(/^(DATABASE_URL|REDIS_URL|PORT|PROBE_DATA|PROBE_MODULES|PROBE_SUPERVISOR|NODE_ENV|PATH|LANG|LC_ALL|LC_CTYPE|TZ|TMPDIR|NODE_EXTRA_CA_CERTS|OTEL_EXPORTER_OTLP_ENDPOINT|CHANGELENS_COLOR|CHANGELENS_RELEASE_ID|pm_id|NODE_APP_INSTANCE)$/);
    expect(res).toMatchObject({
      secrets: 'EACCES', routing: 'EACCES', pm2Home: 'EACCES', backups: 'EACCES', postgresFiles: 'EACCES',
      supervisorSocket: 'EACCES', ownCode: 'EACCES', becomeRoot: 'EPERM', supervisorEnviron: 'EACCES',
    });
    expect(res).toMatchObject({
      dbUser: 'changelens_app', ownTable: 'allowed', items: 'allowed',
      releasesTable: '42501', auditInsert: '42501',
      pointersUpdate: '42501', createRole: '42501', // insufficient_privilege
    });
    expect(res).toMatchObject({ redisSet: 'allowed', redisConfig: 'NOPERM', redisFlush: 'NOPERM', redisAcl: 'NOPERM' });
    expect(res).toMatchObject({ listenFd: 0, listenOtherPort: 'no answer', listenUnix: 'no answer' });
    expect(app.records.some((r) => r.service === 'supervisor' && typeof r.refused === 'string' && r.refused.includes('"fd":7'))).toBe(true);
    await queryControl(join(app.dataDir, 'state', 'supervisor.sock'), '/processes/api-green/stop', app.dataDir, { method: 'POST', timeoutMs: 30_000 });
  });

  it('keeps the audit log append-only, even for the appliance\'s own database user', async () => {
    const db = new pg.Client({ connectionString: `postgres://changelens:${encodeURIComponent(app.secrets().pgPassword)}@127.0.0.1:${app.ports.pgPort}/changelens` });
    await db.connect();
    try {
      await db.query("INSERT INTO audit_events (event_id, event_type, actor, success) VALUES ('e2e-append-only', 'test', 'e2e', true)");
      await expect(db.query("UPDATE audit_events SET actor = 'someone else' WHERE event_id = 'e2e-append-only'")).rejects.toThrow(/append-only \(UPDATE refused\)/);
      await expect(db.query("DELETE FROM audit_events WHERE event_id = 'e2e-append-only'")).rejects.toThrow(/append-only \(DELETE refused\)/);
      await expect(db.query('TRUNCATE audit_events')).rejects.toThrow(/append-only \(TRUNCATE refused\)/);
      expect((await db.query("SELECT actor FROM audit_events WHERE event_id = 'e2e-append-only'")).rows).toEqual([{ actor: 'e2e' }]);
    } finally {
      await db.end();
    }
  });
  it('the admin API, fuzzed: never a 5xx, and nothing changes when it answers 4xx', async () => {
    const token = app.secrets().adminToken;
    /** What an admin request could change: routing, releases, deployments, both colours' regressions, backups. */
    const snapshot = async (): Promise<unknown[]> => [
      JSON.parse(readFileSync(join(app.dataDir, 'state', 'proxy', 'routing.json'), 'utf8')),
      await adminCall(app.url, token, 'GET', '/api/releases'),
      await adminCall(app.url, token, 'GET', '/api/deployments'),
      await adminCall(app.url, token, 'GET', '/api/colors/blue/regressions'),
      // Less what moves with the clock alone (a backup's age, what is overdue).
      JSON.parse(JSON.stringify(await adminCall(app.url, token, 'GET', '/api/backups'), (key, v: unknown) => (/^(ageSeconds|overdue|dueInSeconds)$/.test(key) ? undefined : v))),
    ];
    const ROUTES = [
      'api/status', 'api/releases', 'api/releases/:v/artifact', 'api/deployments', 'api/deployments/:v', 'api/deployments/:v/export',
      'api/deployment/pause', 'api/deployment/resume', 'api/deployment/promote', 'api/deployment/rollback', 'api/audit', 'api/live',
      'api/health', 'api/backups', 'api/backups/:v/verify', 'api/backups/:v/restore', 'api/previews', 'api/colors/:v/regressions',
      'api/colors/:v/regressions/:v', 'api/colors/:v/metrics/reset', 'metrics', 'login', 'logout', 'preview', ':v', 'api/:v',
    ];
    const segment = fc.oneof(fc.constantFrom('blue', 'green', 'red', 'errors', 'cpu', 'latest', '..', '%2e%2e', '%00', 'd-1', ''), fc.string({ maxLength: 40 }).map(encodeURIComponent), fc.string({ minLength: 300, maxLength: 2000 }).map(encodeURIComponent));
    const path = fc.tuple(fc.constantFrom(...ROUTES), fc.array(segment, { minLength: 3, maxLength: 3 }), fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 })), { nil: undefined }))
      .map(([route, [a, b, c], query]) => {
        let i = 0;
        const filled = route.replace(/:v/g, () => [a, b, c][i++]!);
        return `/_changelens/${filled}${query ? `?${new URLSearchParams(query)}` : ''}`;
      });
    const body = fc.oneof(
      fc.constant(undefined),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      // Shaped like the real bodies, with a version no release may have (a valid one would start a
      // deployment, which changes state on its own afterwards: that is the rollout tests' job).
      fc.record({
        version: fc.string({ maxLength: 70 }).filter((v) => !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v)),
        strategy: fc.string({ maxLength: 10 }), env: fc.jsonValue({ maxDepth: 2 }), secrets: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })),
        intensity: fc.double(), minutes: fc.integer(), color: fc.string({ maxLength: 6 }), kinds: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
      }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 200 }),
    );
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
      path,
      auth: fc.constantFrom('token', 'token', 'token', 'none', 'wrong', 'cookie'),
      contentType: fc.constantFrom('application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined),
      csrf: fc.boolean(),
      body,
    });
    let answered = 0;
    await fc.assert(fc.asyncProperty(request, async (r) => {
      const headers: Record<string, string> = {};
      if (r.auth === 'token') headers.authorization = `Bearer ${token}`;
      if (r.auth === 'wrong') headers.authorization = `Bearer ${'x'.repeat(40)}`;
      if (r.auth === 'cookie') headers.cookie = 'changelens-session=forged-session-id';
      if (r.contentType && r.body !== undefined) headers['content-type'] = r.contentType;
      if (r.csrf) headers['x-changelens-csrf'] = '1';
      const sendsBody = r.body !== undefined && r.method !== 'GET' && r.method !== 'OPTIONS';
      const before = await snapshot();
      const res = await fetch(`${app.url}${r.path}`, { method: r.method, headers, redirect: 'manual', ...(sendsBody ? { body: r.body } : {}), signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      answered++;
      expect(res.status, `${r.method} ${r.path} → ${res.status} ${text.slice(0, 300)}`).toBeLessThan(500);
      if (res.status >= 400) expect(await snapshot(), `${r.method} ${r.path} → ${res.status} changed something`).toEqual(before);
      // A fixed seed in CI (the same requests every run); FUZZ_SEED explores others.
    }), { numRuns: 150, seed: Number(process.env.FUZZ_SEED ?? 20261130) });
    expect(answered).toBe(150);
  }, 180_000);
});
