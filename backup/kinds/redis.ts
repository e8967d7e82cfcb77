// Redis backups (embedded Redis only; a managed Redis has its provider's): a BGSAVE snapshot copied
// out, verified by loading it into a throwaway redis-server, restored key by key (with TTLs) from
// such a scratch server into the live one.
import { spawn } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, RESP_TYPES } from '@redis/client';
import { createRedisClient } from '../../lib/redis.js';
import { describeFile, type BackupEntry, type Check, type Manifest } from '../manifest.js';
import type { BackupDriver } from './driver.js';

type ScratchRedis = ReturnType<typeof scratchClient>;
const scratchClient = (path: string) => createClient({ socket: { path, reconnectStrategy: false, connectTimeout: 2_000 } });

const REDIS_FILE = 'redis.rdb';
const BGSAVE_TIMEOUT_MS = 10 * 60_000;
const MB = 1024 * 1024;

export interface RedisDriverOptions {
  redisUrl: string;
  /** The embedded Redis's data dir (where BGSAVE writes dump.rdb) and its redis-server binary. */
  embedded: { dataDir: string; server: string; user?: { uid: number; gid: number } };
  now: () => number;
}

export class RedisDriver implements BackupDriver {
  readonly kind = 'redis' as const;

  constructor(private readonly o: RedisDriverOptions) {}

  async estimateBytes(): Promise<number> {
    const rdb = join(this.o.embedded.dataDir, 'dump.rdb');
    return existsSync(rdb) ? statSync(rdb).size * 2 : 64 * MB;
  }

  async take(dir: string, manifest: Manifest): Promise<void> {
    const client = createRedisClient(this.o.redisUrl, { name: 'changelens-backup', reconnect: false });
    await client.connect();
    try {
      // rdb_saves counts completed snapshots: LASTSAVE has a one-second resolution, and two saves
      // in one second would look like none.
      const saves = async (): Promise<Record<string, string>> => parseInfo(await client.info('persistence'));
      const before = Number((await saves()).rdb_saves ?? 0);
      // SCHEDULE: if an AOF rewrite runs, the save starts right after it instead of failing.
      await client.sendCommand(['BGSAVE', 'SCHEDULE']);
      const deadline = this.o.now() + BGSAVE_TIMEOUT_MS;
      for (;;) {
        const info = await saves();
        if (info.rdb_bgsave_in_progress === '0' && Number(info.rdb_saves ?? 0) > before) {
          if (info.rdb_last_bgsave_status !== 'ok') throw new Error(`Redis BGSAVE failed (rdb_last_bgsave_status: ${info.rdb_last_bgsave_status}); see the redis log`);
          break;
        }
        if (this.o.now() > deadline) throw new Error(`Redis BGSAVE did not finish within ${BGSAVE_TIMEOUT_MS / 60_000} minutes`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const serverInfo = parseInfo(await client.info('server'));
      const keys = await client.dbSize();
      const file = join(dir, REDIS_FILE);
      // Redis writes a new snapshot to a temp file and renames it: this copy reads one whole file.
      copyFileSync(join(this.o.embedded.dataDir, 'dump.rdb'), file);
      manifest.servers.redis = serverInfo.redis_version ?? 'unknown';
      manifest.redis = { keys };
      manifest.files.push(await describeFile(file, 'redis'));
    } finally {
      await client.close().catch(() => {});
    }
  }

  async inspect(): Promise<Check[]> {
    return [];
  }

  async verify(entry: BackupEntry, file: string): Promise<Check> {
    try {
      const keys = await this.withScratchRedis(file, async (client) => client.dbSize());
      const ok = keys === entry.redis?.keys;
      return { name: 'load into a scratch Redis', ok, detail: ok ? `${keys} keys` : `${keys} keys, the manifest says ${entry.redis?.keys}` };
    } catch (err) {
      return { name: 'load into a scratch Redis', ok: false, detail: (err as Error).message };
    }
  }

  async refuseRestore(): Promise<Check[]> {
    return [];
  }

  /** FLUSHALL, then every key of the snapshot (with its TTL) copied from a scratch Redis loaded with it. */
  async restore(_entry: BackupEntry, file: string): Promise<{ redisKeys: number }> {
    const redisKeys = await this.withScratchRedis(file, async (scratch) => {
      const live = createRedisClient(this.o.redisUrl, { name: 'changelens-restore', reconnect: false });
      await live.connect();
      try {
        await live.flushAll();
        // Keys and values as bytes, and a SCAN loop of our own: node-redis's scanIterator never
        // ends when replies are mapped to Buffers (its cursor comparison expects a string).
        const bytes = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };
        let copied = 0;
        let cursor = '0';
        do {
          const [next, keys] = (await scratch.sendCommand(['SCAN', cursor, 'COUNT', '500'], bytes)) as unknown as [Buffer, Buffer[]];
          cursor = next.toString();
          for (const key of keys) {
            const [value, ttl] = (await Promise.all([scratch.sendCommand(['DUMP', key], bytes), scratch.sendCommand(['PTTL', key])])) as unknown as [Buffer | null, number];
            if (value === null || ttl === -2) continue;
            await live.sendCommand(['RESTORE', key, String(ttl > 0 ? ttl : 0), value, 'REPLACE']);
            copied++;
          }
        } while (cursor !== '0');
        return copied;
      } finally {
        await live.close().catch(() => {});
      }
    });
    return { redisKeys };
  }

  /** A throwaway redis-server on a unix socket in a temp dir, loaded with the backup's snapshot. */
  private async withScratchRedis<T>(snapshot: string, fn: (client: ScratchRedis) => Promise<T>): Promise<T> {
    const tmp = mkdtempSync(join(tmpdir(), 'changelens-redis-'));
    const socket = join(tmp, 'redis.sock');
    copyFileSync(snapshot, join(tmp, 'dump.rdb'));
    // A snapshot holds what the app put there (its Lua functions too): loaded by the user Redis
    // runs as, never by root.
    const user = this.o.embedded.user;
    if (user) for (const path of [tmp, join(tmp, 'dump.rdb')]) chownSync(path, user.uid, user.gid);
    const child = spawn(this.o.embedded.server, ['--port', '0', '--unixsocket', socket, '--dir', tmp, '--dbfilename', 'dump.rdb', '--appendonly', 'no', '--save', '', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid } : {}) });
    let stderr = '';
    // Redis logs to stdout: keep both, for the reason it refused a snapshot.
    for (const s of [child.stdout, child.stderr]) s.setEncoding('utf8').on('data', (c: string) => { stderr = (stderr + c).slice(-4_000); });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let client: ScratchRedis | null = null;
    try {
      const deadline = this.o.now() + 30_000;
      while (client === null) {
        if (child.exitCode !== null) throw new Error(`redis-server refused the snapshot: ${stderr.trim().split('\n').slice(-2).join(' / ') || `exit code ${child.exitCode}`}`);
        if (existsSync(socket)) {
          const attempt = scratchClient(socket);
          attempt.on('error', () => {});
          try {
            await attempt.connect();
            // While it loads, Redis answers LOADING errors: wait until it serves.
            await attempt.ping();
            client = attempt;
            break;
          } catch {
            if (attempt.isOpen) await attempt.close().catch(() => {});
          }
        }
        if (this.o.now() > deadline) throw new Error('redis-server did not load the snapshot within 30 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      return await fn(client);
    } finally {
      if (client?.isOpen) await client.close().catch(() => {});
      child.kill('SIGKILL');
      await exited;
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}
