// Backups end to end on one appliance (real Postgres and Redis, the CLI, the admin API): a backup
// is taken with its manifest, more data are written, the restore brings back exactly the backed-up
// rows and keys while the proxy holds traffic (503 + Retry-After), the appliance's own history is
// kept, a flipped byte makes verify and restore refuse without touching anything, retention keeps
// exactly what it should, and a run without disk space leaves the older backups intact.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { launchAppliance, type Appliance } from '../../bench/harness.js';
import { runCli } from '../helpers/cli.js';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { backupKey, BackupService, decryptFile, OffsiteStore, PostgresDriver, RedisDriver, type BackupDriver, type BackupEvent, type Manifest } from '../../backup/index.js';
import { createLogger } from '../../lib/logger.js';
import { reapOrphans } from '../../supervisor/index.js';

vi.setConfig({ testTimeout: 120_000 });

let app: Appliance;
let db: pg.Client;
let redis: ReturnType<typeof createClient>;
let hookServer: Server;
const hooks: any[] = [];
let dbUrl: string;
let redisUrl: string;

// Schedules that cannot fire during a test run (29 February, 03:00), so only the tests make backups.
const NEVER = '0 3 29 2 *';

beforeAll(async () => {
  hookServer = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c)).on('end', () => { hooks.push(JSON.parse(body)); res.end(); });
  });
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
  app = await launchAppliance({
    env: {
      CHANGELENS_SEED_ITEMS: '300',
      CHANGELENS_MONITOR_RULES: '[]',
      CHANGELENS_BACKUP_PG_SCHEDULE: NEVER,
      CHANGELENS_BACKUP_REDIS_SCHEDULE: NEVER,
      CHANGELENS_BACKUP_VERIFY_SCHEDULE: 'off',
      CHANGELENS_BACKUP_KEEP: '2',
      CHANGELENS_HOOK_URLS: `http://127.0.0.1:${(hookServer.address() as { port: number }).port}/hook`,
    },
  });
  await app.ready;
  const { pgPassword, redisPassword } = app.secrets();
  dbUrl = `postgres://changelens:${encodeURIComponent(pgPassword)}@127.0.0.1:${app.ports.pgPort}/changelens`;
  redisUrl = `redis://default:${encodeURIComponent(redisPassword)}@127.0.0.1:${app.ports.redisPort}`;
  db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  redis = createClient({ url: redisUrl });
  await redis.connect();
});

afterAll(async () => {
  await db?.end().catch(() => {});
  await redis?.close().catch(() => {});
  if (app && app.child.exitCode === null) await app.stop('SIGTERM');
  if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
  hookServer?.close();
});

const backupsDir = (): string => join(app.dataDir, 'backups');
const ids = (): string[] => readdirSync(backupsDir()).filter((n) => !n.startsWith('.')).sort();

async function backupNow(...flags: string[]): Promise<Manifest> {
  const res = await runCli(['backup', 'now', '--json', ...flags], app.env, 120_000);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as Manifest;
}

/** Every item row and every app key with its value and whether it expires: what a restore must bring back. */
async function snapshot(): Promise<{ items: string; keys: Record<string, string | null>; expiring: string[] }> {
  const items = JSON.stringify((await db.query('SELECT * FROM app.items ORDER BY id')).rows);
  const keys: Record<string, string | null> = {};
  const expiring: string[] = [];
  for await (const batch of redis.scanIterator({ MATCH: 'bk:*' })) {
    for (const key of batch) {
      keys[key] = await redis.get(key);
      if ((await redis.pTTL(key)) > 0) expiring.push(key);
    }
  }
  return { items, keys, expiring: expiring.sort() };
}

async function auditEvents(): Promise<any[]> {
  const res = await fetch(`${app.url}/_changelens/api/audit?since=1h`, { headers: { authorization: `Bearer ${app.secrets().adminToken}` } });
  return ((await res.json()) as { events: any[] }).events;
}

describe('take, change, restore', () => {
  let taken: Manifest;
  let before: Awaited<ReturnType<typeof snapshot>>;

  it('backup now --json: a manifest of both kinds whose sizes and sha256 are the files\'', async () => {
    for (let i = 0; i < 40; i++) await redis.set(`bk:${i}`, `value-${i}`);
    await redis.set('bk:ttl', 'expires', { PX: 3_600_000 });
    await db.query(`UPDATE app.items SET name = name || ' (before backup)' WHERE id % 7 = 0`);
    before = await snapshot();
    taken = await backupNow();
    expect(taken.kinds).toEqual(['postgres', 'redis']);
    expect(taken.servers.postgres).toMatch(/^\d+/);
    expect(taken.servers.redis).toMatch(/^\d+\.\d+/);
    expect(taken.redis!.keys).toBeGreaterThanOrEqual(41);
    expect(taken.database!.tables).toEqual(expect.arrayContaining(['app.items', 'public.audit_events']));
    for (const f of taken.files) {
      const bytes = readFileSync(join(backupsDir(), taken.id, f.name));
      expect(bytes.length).toBe(f.bytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(f.sha256);
    }
    expect(ids()).toEqual([taken.id]);
  });

  it('restore: exactly the backed-up rows and keys are back; clients were held with 503 + Retry-After; the audit log is kept', async () => {
    // Changes after the backup: rows edited, added and deleted; keys changed, added and deleted.
    await db.query(`UPDATE app.items SET name = 'changed after backup' WHERE id % 5 = 0`);
    await db.query(`INSERT INTO app.items (name, category, price_cents) SELECT 'new ' || g, 'new', 1 FROM generate_series(1, 50) g`);
    await db.query('DELETE FROM app.items WHERE id % 11 = 0');
    await redis.set('bk:1', 'changed');
    await redis.set('bk:after', 'new');
    await redis.del('bk:2');
    expect(await snapshot()).not.toEqual(before);
    const auditBefore = (await auditEvents()).length;

    // Clients keep asking while the restore runs.
    const statuses: Array<{ status: number; retryAfter: string | null }> = [];
    let stop = false;
    const load = (async () => {
      while (!stop) {
        const res = await fetch(`${app.url}/api/data?limit=1`).catch(() => null);
        if (res) {
          statuses.push({ status: res.status, retryAfter: res.headers.get('retry-after') });
          await res.arrayBuffer();
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const res = await runCli(['backup', 'restore', taken.id, '--json'], app.env, 120_000);
    stop = true;
    await load;
    expect(res.code, res.stderr).toBe(0);
    const result = JSON.parse(res.stdout);
    expect(result).toMatchObject({ id: taken.id, kinds: ['postgres', 'redis'] });
    expect(result.tables['app.items']).toBeGreaterThan(0);
    expect(result.tables).not.toHaveProperty('public.audit_events');

    expect(await snapshot()).toEqual(before);
    const held = statuses.filter((s) => s.status === 503);
    expect(held.length).toBeGreaterThan(0);
    expect(held.every((s) => s.retryAfter === '30')).toBe(true);
    expect(statuses.filter((s) => s.status !== 503 && s.status !== 200)).toEqual([]);
    // Traffic resumed on the restored data.
    const after = await fetch(`${app.url}/api/data?limit=1`);
    expect(after.status).toBe(200);
    await after.arrayBuffer();
    // The appliance's own tables were not rewound: every earlier event is still there, plus the restore's.
    const events = await auditEvents();
    expect(events.length).toBeGreaterThan(auditBefore);
    expect(events.map((e) => e.eventType)).toEqual(expect.arrayContaining(['backup', 'backup_restore', 'restore']));
  });
});

describe('verification', () => {
  it('a good backup verifies: checksums, pg_restore --list, scratch restores of both kinds', async () => {
    const id = ids().at(-1)!;
    const res = await runCli(['backup', 'verify', id, '--json'], app.env, 120_000);
    expect(res.code, res.stderr + res.stdout).toBe(0);
    const v = JSON.parse(res.stdout);
    expect(v.ok).toBe(true);
    expect(v.checks.map((c: any) => [c.name, c.ok])).toEqual([
      ['manifest', true], ['postgres.dump', true], ['redis.rdb', true], ['pg_restore --list', true],
      ['restore into a scratch database', true], ['load into a scratch Redis', true],
    ]);
    const list = JSON.parse((await runCli(['backup', 'list', '--json'], app.env)).stdout);
    expect(list.backups.find((b: any) => b.id === id).verification.ok).toBe(true);
    // No scratch database is left behind.
    const { rows } = await db.query(`SELECT datname FROM pg_database WHERE datname LIKE 'changelens_verify_%'`);
    expect(rows).toEqual([]);
  });

  it('a flipped byte: verify and restore refuse it, name the file, and change nothing; the refusal is audited and alerted', async () => {
    const m = await backupNow('--pg');
    const file = join(backupsDir(), m.id, 'postgres.dump');
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(file, bytes);
    await db.query(`UPDATE app.items SET name = 'after the bad backup' WHERE id = (SELECT min(id) FROM app.items)`);
    const before = await snapshot();

    const verify = await runCli(['backup', 'verify', m.id], app.env, 120_000);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/FAIL postgres\.dump: sha256 .* does not match the manifest/);

    hooks.length = 0;
    const restore = await runCli(['backup', 'restore', m.id], app.env, 120_000);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain('CL_ERR_BACKUP_INVALID');
    expect(restore.stderr).toContain('postgres.dump');
    expect(await snapshot()).toEqual(before);
    const refusal = (await auditEvents()).find((e) => e.eventType === 'backup_restore' && !e.success);
    expect(refusal.error).toContain('postgres.dump');
    await vi.waitFor(() => expect(hooks).toEqual([expect.objectContaining({ type: 'backup_restore_failed', id: m.id })]), { timeout: 10_000 });
  });
});

describe('retention and failures', () => {
  it('keeps the newest 2 good backups of each kind, and deletes exactly the rest', async () => {
    // Start from two full backups so both kinds have history.
    const f1 = await backupNow();
    const f2 = await backupNow();
    // Postgres: f2, f1 are the newest two; Redis: f2, f1. Everything older is gone.
    expect(ids()).toEqual([f1.id, f2.id].sort());
    const p1 = await backupNow('--pg');
    // Postgres: p1, f2 kept; Redis: f2, f1 kept.
    expect(ids()).toEqual([f1.id, f2.id, p1.id].sort());
    const p2 = await backupNow('--pg');
    // Postgres: p2, p1; Redis: f2, f1 — all four stay.
    expect(ids()).toEqual([f1.id, f2.id, p1.id, p2.id].sort());
    const r1 = await backupNow('--redis');
    // Redis: r1, f2 → f1 goes (its Postgres part is older than p2, p1 too).
    expect(ids()).toEqual([f2.id, p1.id, p2.id, r1.id].sort());
  });

  it('a run without enough disk space fails before writing, reports it, and leaves the older backups intact', async () => {
    const before = ids();
    const events: BackupEvent[] = [];
    // The same services and backups dir, with a free-space margin no disk here has.
    const service = new BackupService({
      dir: backupsDir(), databaseUrl: dbUrl, redisUrl,
      embeddedRedis: { dataDir: join(app.dataDir, 'redis'), server: 'redis-server' },
      pgBinDir: undefined, policy: { keep: 1, maxAgeDays: 0 }, minFreeMb: 100_000_000,
      log: createLogger('backup-test', { level: 'silent' }), onEvent: (e) => { events.push(e); },
    });
    await expect(service.backup()).rejects.toMatchObject({ code: 'CL_ERR_BACKUP_FAILED', message: expect.stringMatching(/not enough disk space .* MB free/) });
    expect(ids()).toEqual(before);
    expect(readdirSync(backupsDir()).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(events).toEqual([expect.objectContaining({ type: 'backup', ok: false, error: expect.stringContaining('not enough disk space') })]);
  });
});

describe('encryption at rest', () => {
  it('files and the secrets are stored encrypted; verify and restore read them with the key, and refuse without it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'changelens-enc-'));
    const secretsFile = join(app.dataDir, 'state', 'secrets.json');
    const make = (secret: string | null, encrypt: boolean) => new BackupService({
      dir, databaseUrl: dbUrl, redisUrl, embeddedRedis: { dataDir: join(app.dataDir, 'redis'), server: 'redis-server' },
      pgBinDir: undefined, policy: { keep: 5, maxAgeDays: 0 }, minFreeMb: 1, log: createLogger('backup-test', { level: 'silent' }),
      encryption: secret === null ? null : { key: backupKey(secret), secretsFile, encrypt },
    });
    try {
      const withKey = make('the-right-key-0123456789', true);
      const m = await withKey.backup();
      expect(m.encryption).toEqual({ algorithm: 'aes-256-gcm', keyId: backupKey('the-right-key-0123456789').id });
      expect(m.files.map((f) => [f.name, f.kind])).toEqual([['postgres.dump.enc', 'postgres'], ['redis.rdb.enc', 'redis'], ['secrets.json.enc', 'secrets']]);
      // Nothing readable is left: not the dump's header, not the admin token.
      const stored = readdirSync(join(dir, m.id)).filter((n) => n !== 'manifest.json');
      expect(stored.sort()).toEqual(['postgres.dump.enc', 'redis.rdb.enc', 'secrets.json.enc']);
      for (const name of stored) {
        const bytes = readFileSync(join(dir, m.id, name));
        expect(bytes.includes(Buffer.from('PGDMP'))).toBe(false);
        expect(bytes.includes(Buffer.from(app.secrets().adminToken))).toBe(false);
      }
      const secretsBack = join(dir, 'secrets.plain');
      await decryptFile(join(dir, m.id, 'secrets.json.enc'), secretsBack, backupKey('the-right-key-0123456789'));
      expect(JSON.parse(readFileSync(secretsBack, 'utf8'))).toEqual(app.secrets());

      const v = await withKey.verify(m.id);
      expect(v.checks.map((c) => [c.name, c.ok])).toEqual([
        ['manifest', true], ['postgres.dump.enc', true], ['redis.rdb.enc', true], ['secrets.json.enc', true], ['decrypt', true], ['pg_restore --list', true],
        ['restore into a scratch database', true], ['load into a scratch Redis', true],
      ]);
      // Another key: the manifest is not its own (signed with the right key), so nothing is read.
      const wrong = await make('a-wrong-key-0123456789ab', false).verify(m.id);
      expect(wrong.ok).toBe(false);
      expect(wrong.checks).toEqual([expect.objectContaining({ name: 'manifest', ok: false, detail: expect.stringContaining('CHANGELENS_BACKUP_KEY') })]);
      await expect(make(null, false).restore(m.id)).rejects.toMatchObject({ code: 'CL_ERR_BACKUP_INVALID' });
      // With the key (encryption now off for new backups), the restore reads it.
      const restored = await make('the-right-key-0123456789', false).restore(m.id);
      expect(restored.tables['app.items']).toBeGreaterThan(0);
      // A planted dump: its sha256 written into the manifest by someone without the key. Refused, nothing restored.
      const manifestFile = join(dir, m.id, 'manifest.json');
      const original = readFileSync(manifestFile, 'utf8');
      const altered = JSON.parse(original) as { files: { name: string; sha256: string }[] };
      altered.files[0]!.sha256 = 'f'.repeat(64);
      writeFileSync(manifestFile, JSON.stringify(altered));
      await expect(withKey.restore(m.id)).rejects.toMatchObject({ code: 'CL_ERR_BACKUP_INVALID', message: expect.stringContaining('manifest: its signature does not match') });
      const { mac: _mac, ...unsigned } = JSON.parse(original) as { mac?: string };
      writeFileSync(manifestFile, JSON.stringify(unsigned));
      expect((await withKey.verify(m.id)).checks).toEqual([expect.objectContaining({ name: 'manifest', ok: false, detail: expect.stringContaining('unsigned') })]);
      writeFileSync(manifestFile, original);
      expect(readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('off-box copies (a local S3-compatible server, s3rver, stands in for COS or S3)', () => {
  it('each good backup is uploaded whole under <prefix>/<id>/; retention deletes it there too; an unreachable store keeps the backup and reports it', async () => {
    const storeDir = mkdtempSync(join(tmpdir(), 'changelens-s3-'));
    const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: storeDir, configureBuckets: [{ name: 'backups', configs: [] }] });
    const { port } = await s3.run();
    const endpoint = `http://127.0.0.1:${port}`;
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    const dir = mkdtempSync(join(tmpdir(), 'changelens-off-'));
    const events: BackupEvent[] = [];
    const offsite = new OffsiteStore({ url: 's3://backups/prod', endpoint, region: 'us-east-1', pathStyle: true });
    const service = new BackupService({
      dir, databaseUrl: dbUrl, redisUrl, embeddedRedis: { dataDir: join(app.dataDir, 'redis'), server: 'redis-server' },
      pgBinDir: undefined, policy: { keep: 1, maxAgeDays: 0 }, minFreeMb: 1, log: createLogger('backup-test', { level: 'silent' }),
      offsite, onEvent: (e) => { events.push(e); },
    });
    const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, responseChecksumValidation: 'WHEN_REQUIRED' });
    const keys = async (): Promise<string[]> => ((await client.send(new ListObjectsV2Command({ Bucket: 'backups' }))).Contents ?? []).map((o) => o.Key!).sort();
    try {
      const first = await service.backup(['postgres']);
      expect(await keys()).toEqual([`prod/${first.id}/manifest.json`, `prod/${first.id}/postgres.dump`]);
      const object = await client.send(new GetObjectCommand({ Bucket: 'backups', Key: `prod/${first.id}/postgres.dump` }));
      const body = Buffer.from(await object.Body!.transformToByteArray());
      expect(createHash('sha256').update(body).digest('hex')).toBe(first.files[0]!.sha256);
      expect(service.get(first.id).offsite).toMatchObject({ url: `s3://backups/prod/${first.id}/`, objects: 2 });

      // keep 1: the second backup replaces the first, here and in the bucket.
      const second = await service.backup(['postgres']);
      expect(await keys()).toEqual([`prod/${second.id}/manifest.json`, `prod/${second.id}/postgres.dump`]);

      // The store goes away: the backup is still taken and kept; the failed copy is reported.
      await s3.close();
      events.length = 0;
      const third = await service.backup(['postgres']);
      expect(service.get(third.id).offsite).toBeNull();
      expect(events.map((e) => [e.type, e.ok])).toEqual([['backup_offsite', false], ['backup', true]]);
    } finally {
      client.destroy();
      offsite.close();
      await s3.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      rmSync(storeDir, { recursive: true, force: true });
    }
  });
});

describe('visible everywhere', () => {
  it('status, /healthz?all=1, Prometheus and the admin API show the backups; bad input is a 400 naming the field', async () => {
    const status = await runCli(['status'], app.env);
    expect(status.stdout).toMatch(/backups +last: postgres \d+ s ago \([\d.]+ kB, (not verified|verified)\); redis \d+ s ago/);
    expect(status.stdout).toMatch(/next: postgres 20\d\d-02-29T/);
    const json = JSON.parse((await runCli(['status', '--json'], app.env)).stdout);
    expect(json.backups).toMatchObject({ kinds: ['postgres', 'redis'], overdue: [], next: { verify: null } });

    const auth = { authorization: `Bearer ${app.secrets().adminToken}` };
    const health = await (await fetch(`${app.url}/healthz?all=1`, { headers: auth })).json() as any;
    expect(health).toMatchObject({ status: 'ok', backups: { overdue: [] } });

    const metrics = await (await fetch(`${app.url}/_changelens/metrics`, { headers: auth })).text();
    expect(metrics).toMatch(/changelens_backup_age_seconds\{kind="postgres"\} \d+/);
    expect(metrics).toMatch(/changelens_backup_size_bytes\{kind="redis"\} \d+/);
    expect(metrics).toMatch(/changelens_backup_overdue\{kind="postgres"\} 0/);

    const bad = await fetch(`${app.url}/_changelens/api/backups`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ kinds: ['mysql'] }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).message).toContain('body/kinds');
    const unknown = await fetch(`${app.url}/_changelens/api/backups/nope/restore`, { method: 'POST', headers: auth });
    expect(unknown.status).toBe(404);
    await unknown.arrayBuffer();
    expect(existsSync(join(backupsDir(), 'nope'))).toBe(false);
  });
});

// One contract, both kinds: what the service asks of a driver (backup/kinds/driver.ts), checked on
// the appliance's own Postgres and Redis. Last in the file: its restores replace live data.
describe('the backup drivers (one contract, Postgres and Redis)', () => {
  const drivers = (): BackupDriver[] => [
    new PostgresDriver({ databaseUrl: dbUrl, pgBinDir: undefined, log: createLogger('backup-test', { level: 'silent' }) }),
    new RedisDriver({ redisUrl, embedded: { dataDir: join(app.dataDir, 'redis'), server: 'redis-server' }, now: Date.now }),
  ];
  /** A marker written before the backup and one after, in each kind's store. */
  const marks = {
    postgres: {
      write: (name: string) => db.query('INSERT INTO app.items (category, name, price_cents) VALUES ($1, $2, 1)', ['contract', name]),
      has: async (name: string) => (await db.query('SELECT 1 FROM app.items WHERE name = $1', [name])).rowCount === 1,
    },
    redis: {
      write: (name: string) => redis.set(`bk:${name}`, '1'),
      has: async (name: string) => (await redis.exists(`bk:${name}`)) === 1,
    },
  };

  for (const kind of ['postgres', 'redis'] as const) {
    it(`${kind}: estimates, takes, inspects, verifies, refuses a damaged file, restores exactly what it took`, async () => {
      const driver = drivers().find((d) => d.kind === kind)!;
      const dir = mkdtempSync(join(tmpdir(), `contract-${kind}-`));
      try {
        expect(await driver.estimateBytes()).toBeGreaterThan(0);
        await marks[kind].write(`${kind}-before`);
        const manifest: Manifest = { schemaVersion: 1, id: `contract-${kind}`, kinds: [kind], reason: 'manual', startedAt: new Date().toISOString(), finishedAt: '', durationMs: 0, files: [], servers: {} };
        await driver.take(dir, manifest);
        expect(manifest.files).toEqual([expect.objectContaining({ kind, bytes: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) })]);
        expect(manifest.servers[kind]).toMatch(/^\d+\.\d+/);
        const file = join(dir, manifest.files[0]!.name);
        const entry = { ...manifest, totalBytes: manifest.files[0]!.bytes, verification: null, offsite: null };
        expect((await driver.inspect(entry, file)).filter((c) => !c.ok)).toEqual([]);
        expect(await driver.verify(entry, file)).toMatchObject({ ok: true });
        expect(await driver.refuseRestore(entry)).toEqual([]);

        const damaged = join(dir, 'damaged');
        writeFileSync(damaged, readFileSync(file).subarray(0, Math.floor(manifest.files[0]!.bytes / 2)));
        const inspected = await driver.inspect(entry, damaged);
        const verified = await driver.verify(entry, damaged);
        expect([...inspected, verified].some((c) => !c.ok)).toBe(true);

        await marks[kind].write(`${kind}-after`);
        await driver.restore(entry, file);
        expect(await marks[kind].has(`${kind}-before`)).toBe(true);
        expect(await marks[kind].has(`${kind}-after`)).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
