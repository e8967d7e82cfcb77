// npm run bench:backup — backups of a real appliance seeded with a few hundred MB: how long a
// backup, a verification and a restore take (and their MB/s), and what a backup does to live
// traffic: the P99 through the proxy at a constant rate while a backup runs, against the same
// load with no backup, interleaved (A B A B …) and compared round by round.
//   npm run bench:backup [-- --mb 300 --rounds 3 --per-round 5 --rate 200 --kinds postgres,redis]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createClient } from '@redis/client';
import { packageRoot } from '../lib/package-root.js';
import { reapOrphans } from '../supervisor/index.js';
import { adminCall, launchAppliance, type Appliance } from './harness.js';
import { runLoad } from './loadgen.js';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '300' }, rounds: { type: 'string', default: '3' }, 'per-round': { type: 'string', default: '5' }, kinds: { type: 'string', default: 'postgres,redis' }, rate: { type: 'string', default: '200' }, 'redis-mb': { type: 'string', default: '20' } } });
const targetMb = Number(values.mb);
const rounds = Number(values.rounds);
const perRound = Number(values['per-round']);
const kinds = values.kinds.split(',');
const rate = Number(values.rate);
const redisMb = Number(values['redis-mb']);
if (!(targetMb > 0) || !Number.isInteger(rounds) || rounds < 1 || !(rate > 0) || !(redisMb >= 0)) throw new Error('--mb, --redis-mb: sizes in MB; --rounds: a positive integer; --rate: requests per second');

const MB = 1024 * 1024;

const api = (app: Appliance, method: string, path: string, body: unknown = {}): Promise<any> => adminCall(app.url, app.secrets().adminToken, method, path, body);

async function seed(app: Appliance): Promise<{ dbBytes: number; redisKeys: number }> {
  const { pgPassword, redisPassword } = app.secrets();
  const db = new pg.Client({ connectionString: `postgres://changelens:${encodeURIComponent(pgPassword)}@127.0.0.1:${app.ports.pgPort}/changelens` });
  await db.connect();
  const size = async (): Promise<number> => Number((await db.query('SELECT pg_database_size(current_database()) AS s')).rows[0].s);
  // Rows of ~250 bytes of hex (compressible about 2×, as real text is): batches until the target.
  while ((await size()) < targetMb * MB) {
    await db.query(`INSERT INTO app.items (category, name, price_cents)
      SELECT 'cat-' || (g % 50), repeat(md5(g::text || random()::text), 7), (g % 100000) FROM generate_series(1, 250000) g`);
  }
  await db.query('VACUUM ANALYZE items');
  const dbBytes = await size();
  await db.end();
  const redis = createClient({ url: `redis://default:${encodeURIComponent(redisPassword)}@127.0.0.1:${app.ports.redisPort}` });
  await redis.connect();
  const keys = Math.round((redisMb * MB) / 1024);
  const value = 'x'.repeat(1000);
  for (let i = 0; i < keys; i += 1000) {
    const multi = redis.multi();
    for (let j = i; j < Math.min(keys, i + 1000); j++) multi.set(`bench:${j}`, value);
    await multi.exec();
  }
  await redis.close();
  return { dbBytes, redisKeys: keys };
}

const app = await launchAppliance({
  env: {
    CHANGELENS_SEED_ITEMS: '1000', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_BACKUP_KEEP: '2', CHANGELENS_BACKUP_MIN_FREE_MB: '64',
    CHANGELENS_BACKUP_PG_SCHEDULE: 'off', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off', CHANGELENS_BACKUP_VERIFY_SCHEDULE: 'off',
  },
});
try {
  await app.ready;
  const t = performance.now();
  const seeded = await seed(app);
  console.error(`seeded ${Math.round(seeded.dbBytes / MB)} MB of Postgres and ${seeded.redisKeys} Redis keys in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  // The same open-model generator as every benchmark, on one read endpoint; `until` ends it.
  const load = async (until: number | Promise<unknown>) => {
    const stop = new AbortController();
    if (typeof until !== 'number') void until.then(() => stop.abort(), () => stop.abort());
    const r = await runLoad({ target: app.url, rate, durationSeconds: typeof until === 'number' ? until : 86_400, mix: [{ method: 'GET', path: '/api/data?limit=1', weight: 1 }], signal: stop.signal });
    return { p50: r.latency.p50Ms, p99: r.latency.p99Ms, failed: r.failed };
  };
  await load(3); // warm-up

  const results: Array<{ backupMs: number; bytes: number; p99Without: number; p99With: number; p50Without: number; p50With: number; failedWith: number; failedWithout: number }> = [];
  let last: any;
  for (let round = 1; round <= rounds; round++) {
    const t0 = performance.now();
    // Several backups back to back: enough requests during them for a stable P99.
    const backups = (async () => {
      for (let i = 0; i < perRound; i++) last = await api(app, 'POST', '/api/backups', { kinds });
    })();
    const withBackup = await load(backups);
    await backups;
    const backupMs = performance.now() - t0;
    // The same load for as long as the backup took, with no backup.
    const without = await load(Math.max(3, backupMs / 1000));
    const bytes = last.files.reduce((n: number, f: { bytes: number }) => n + f.bytes, 0);
    results.push({ backupMs: last.durationMs, bytes, p99Without: without.p99, p99With: withBackup.p99, p50Without: without.p50, p50With: withBackup.p50, failedWith: withBackup.failed, failedWithout: without.failed });
    console.error(`round ${round} (${perRound} backups): last backup ${(last.durationMs / 1000).toFixed(1)} s, ${Math.round(bytes / MB)} MB; P99 ${withBackup.p99.toFixed(2)} ms during vs ${without.p99.toFixed(2)} ms without`);
  }

  const verify = await api(app, 'POST', `/api/backups/${last.id}/verify`);
  const restore = await api(app, 'POST', `/api/backups/${last.id}/restore`);

  const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]!; };
  const dbMb = seeded.dbBytes / MB;
  const backupS = median(results.map((r) => r.backupMs)) / 1000;
  const ratio = median(results.map((r) => r.p99With / r.p99Without));
  const summary = {
    dbMb: Math.round(dbMb), redisKeys: seeded.redisKeys, backupMb: Math.round(median(results.map((r) => r.bytes)) / MB),
    backupSeconds: backupS, backupMbPerS: dbMb / backupS,
    verifySeconds: verify.durationMs / 1000, verifyOk: verify.ok,
    restoreSeconds: restore.durationMs / 1000, restoreMbPerS: dbMb / (restore.durationMs / 1000),
    p99WithoutMs: median(results.map((r) => r.p99Without)), p99DuringMs: median(results.map((r) => r.p99With)), p99Ratio: ratio,
    failedDuring: results.reduce((n, r) => n + r.failedWith, 0),
  };
  console.log(`bench:backup — ${Math.round(dbMb)} MB Postgres + ${seeded.redisKeys} Redis keys; ${rounds} rounds of ${perRound} backups back to back vs as long without, ${rate} req/s on GET /api/data (medians)`);
  console.log(`backup    ${backupS.toFixed(1)} s for ${summary.backupMb} MB of files = ${summary.backupMbPerS.toFixed(1)} MB/s of database`);
  console.log(`verify    ${summary.verifySeconds.toFixed(1)} s (checksums, pg_restore --list, scratch restores): ${verify.ok ? 'good' : 'BAD'}`);
  console.log(`restore   ${summary.restoreSeconds.toFixed(1)} s = ${summary.restoreMbPerS.toFixed(1)} MB/s of database (traffic held meanwhile)`);
  console.log(`live P99  ${summary.p99DuringMs.toFixed(2)} ms during a backup vs ${summary.p99WithoutMs.toFixed(2)} ms without: ×${ratio.toFixed(2)} (aim ≤ ×1.10); ${summary.failedDuring} failed requests during backups`);
  const dir = join(packageRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `backup-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ summary, rounds: results, verify, restore: { durationMs: restore.durationMs, tables: restore.tables, redisKeys: restore.redisKeys } }, null, 2) + '\n');
  console.log(`wrote ${file}`);
} finally {
  await app.stop('SIGTERM');
  await reapOrphans(join(app.dataDir, 'state', 'pm2'));
}
