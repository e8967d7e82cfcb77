// What the coordinator, its workers and the clients that start runs say to each other, all through
// one Redis (no protocol of our own): keys with a TTL for heartbeats, streams for joins, run
// requests, the coordinator's decisions and each run's results. Everything a party acts on is
// signed with a key derived from the join token, so a process with only the Redis URL can neither
// join, nor start a run, nor point the workers at another target, nor forge results.
import { createHmac, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mac, verify } from '../../fleet/signing.js';
import { CL_ERR_LOAD_COORDINATOR } from '../../lib/errors.js';
import { createRedisClient, destroyQuietly, type RedisClient } from '../../lib/redis.js';
import { withTimeout } from '../../lib/timeout.js';
import type { LoadPlan } from '../loadgen.js';
import type { Epoch } from './shares.js';

/** A worker is declared failed when its heartbeat (every second) has not moved for this long. */
export const HEARTBEAT_LAPSE_MS = 3_000;
export const HEARTBEAT_EVERY_MS = 1_000;
/** A new share takes effect at least this far ahead (workers decide 100 ms before an arrival, so it has 300 ms to reach them). */
export const EPOCH_NOTICE_MS = 400;
/** Keys outlive a run by this long, then Redis drops them. */
export const KEY_TTL_SECONDS = 3_600;
/** The most workers one coordinator admits. */
export const MAX_WORKERS = 256;
/** A message larger than this is not read (a plan with its mix, a second's results). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
const ID = /^[A-Za-z0-9_-]{4,40}$/;

export interface JoinInfo {
  redisUrl: string;
  coordinator: string;
  token: string;
}

/** `redis://…#<coordinator>.<token>`: the one string a worker or a client needs. */
export function formatJoin(j: JoinInfo): string {
  return `${j.redisUrl}#${j.coordinator}.${j.token}`;
}

export function parseJoin(text: string, flag = '--join'): JoinInfo {
  const hash = text.lastIndexOf('#');
  const expected = `${flag}: expected what \`changelens bench coordinator\` printed, redis://host:port#<coordinator>.<token>`;
  if (hash < 0) throw new Error(expected);
  const redisUrl = text.slice(0, hash);
  const [coordinator, token, ...rest] = text.slice(hash + 1).split('.');
  if (!/^rediss?:\/\/[^\s]+$/.test(redisUrl)) throw new Error(`${expected}; the Redis URL is not redis:// or rediss://`);
  if (rest.length || !coordinator || !ID.test(coordinator)) throw new Error(`${expected}; the coordinator id is not 4-40 of [A-Za-z0-9_-]`);
  if (!token || !TOKEN.test(token)) throw new Error(`${expected}; the token is not 16-128 of [A-Za-z0-9_-]`);
  return { redisUrl, coordinator, token };
}

export function checkToken(token: string): string {
  if (!TOKEN.test(token)) throw new Error('--token: expected 16-128 characters of [A-Za-z0-9_-]');
  return token;
}

export const newToken = (): string => randomBytes(24).toString('base64url');
export const newId = (): string => randomBytes(6).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x');

/** The key everything is signed with: derived from the token, never the token itself. */
export function signingKey(token: string): Buffer {
  return createHmac('sha256', token).update('changelens distributed load').digest();
}

/** Key names, all under one coordinator's prefix. */
export function keys(coordinator: string) {
  const p = `changelens:load:${coordinator}`;
  return {
    /** The coordinator's own heartbeat (a TTL key): clients and workers know it is there. */
    alive: `${p}:alive`,
    joins: `${p}:joins`,
    requests: `${p}:requests`,
    control: `${p}:control`,
    /** A client's liveness during its run (a TTL key): when it lapses, the coordinator stops the run. */
    watching: (run: string) => `${p}:watching:${run}`,
    /** The control entry id of the run in progress (a joiner reads the stream from there). */
    current: `${p}:current`,
    admission: (worker: string) => `${p}:admission:${worker}`,
    heartbeat: (worker: string) => `${p}:heartbeat:${worker}`,
    results: (run: string) => `${p}:results:${run}`,
  };
}

export interface WorkerInfo {
  id: string;
  host: string;
  cores: number;
  /** The rate it says it can send (its weight). */
  maxRate: number;
}

export interface Heartbeat {
  worker: string;
  seq: number;
  /** idle: waiting for a run; running: sending one; leaving: stopping (its share goes at once). */
  state: 'idle' | 'running' | 'leaving';
  run: string | null;
}

/** What the coordinator decides, in its control stream, in order. */
export type Control =
  | { kind: 'run'; run: string; plan: LoadPlan; /** Redis time (ms) of the schedule's time 0. */ t0: number; epochs: Epoch[]; /** Per-request results wanted. */ detail?: boolean }
  | { kind: 'epoch'; run: string; epoch: Epoch; why: string }
  | { kind: 'stop'; run: string; atMs: number; why: string }
  | { kind: 'event'; run: string | null; atMs: number | null; event: 'joined' | 'failed' | 'left' | 'refused'; worker: string; detail: string }
  | { kind: 'refused'; request: string; reason: string }
  | { kind: 'end'; run: string };

/** What a client asks of the coordinator. */
export type Request =
  | { kind: 'run'; request: string; run: string; plan: LoadPlan; detail?: boolean }
  | { kind: 'stop'; run: string; why: string }
  | { kind: 'finished'; run: string };

/** A worker's message in a run's results stream: a delta every second, then `done`; `seq` counts from 0 per worker and run. */
export type ResultMessage =
  | { kind: 'delta'; run: string; worker: string; seq: number; delta: import('../loadgen.js').LoadDelta }
  | { kind: 'done'; run: string; worker: string; seq: number; sent: number };

/** What a sealed message is for: one signed for one stream is never read from another. */
export type Purpose = 'join' | 'request' | 'control' | 'result' | 'heartbeat' | 'admission';

/**
 * A message as stream fields: the message with its purpose and when it was sealed (Redis time, ms),
 * and the signature over all three. The purpose keeps a control entry from being read as a request;
 * the time lets a reader refuse one copied back from long ago.
 */
export function sealed(key: Buffer, purpose: Purpose, at: number, message: unknown): Record<string, string> {
  const m = JSON.stringify({ p: purpose, at: Math.round(at), b: message });
  return { m, s: mac(key, m) };
}

/**
 * The message of sealed fields and when it was sealed, or null when it is not signed with `key`,
 * is for another purpose, is older than `maxAgeMs` (given the reader's `now`), is too large or is
 * not JSON.
 */
export function unseal<T>(key: Buffer, fields: Record<string, string> | undefined, purpose: Purpose, fresh?: { now: number; maxAgeMs: number }): { body: T; at: number } | null {
  const m = fields?.m;
  if (typeof m !== 'string' || m.length > MAX_MESSAGE_BYTES || !verify(key, m, fields?.s)) return null;
  try {
    const e = JSON.parse(m) as { p?: unknown; at?: unknown; b?: unknown };
    if (e.p !== purpose || typeof e.at !== 'number') return null;
    if (fresh && Math.abs(fresh.now - e.at) > fresh.maxAgeMs) return null;
    return { body: e.b as T, at: e.at };
  } catch {
    return null;
  }
}

/** unseal's message alone. */
export function opened<T>(key: Buffer, fields: Record<string, string> | undefined, purpose: Purpose, fresh?: { now: number; maxAgeMs: number }): T | null {
  return unseal<T>(key, fields, purpose, fresh)?.body ?? null;
}

/** How old a join or a request may be when read: a copy of an old one is not acted on. */
export const FRESH_MS = 30_000;

/** A stream entry id (what Redis made it), or null: ids read from a key anyone may write are checked. */
export const streamId = (text: string | null | undefined): string | null => (typeof text === 'string' && /^\d{1,16}-\d{1,20}$/.test(text) ? text : null);

/**
 * The shared clock: Redis's TIME, read a few times with the local monotonic clock around it; the
 * sample with the shortest round trip wins. Every party's "time 0" is the same Redis time.
 */
export async function redisClock(client: RedisClient): Promise<() => number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let k = 0; k < 5; k++) {
    const before = performance.now();
    const t = await client.time() as unknown as [string, string] | { unixTimestamp: number; microseconds: number };
    const after = performance.now();
    const redisMs = Array.isArray(t) ? Number(t[0]) * 1000 + Number(t[1]) / 1000 : t.unixTimestamp * 1000 + t.microseconds / 1000;
    const rtt = after - before;
    if (rtt < best.rtt) best = { rtt, offset: redisMs - (before + after) / 2 };
  }
  const { offset } = best;
  return () => performance.now() + offset;
}

/** A client for one party: no offline queue, reconnects, never crashes the process on an error. */
export function connect(url: string, name: string): RedisClient {
  return createRedisClient(url, { name });
}

/** How long a first connection may take: a wrong host or password must not retry silently for ever. */
const CONNECT_MS = 5_000;

/** Connects, or says (without the URL's credentials) that this Redis does not answer. */
export async function connected(client: RedisClient, url: string): Promise<void> {
  try {
    await withTimeout(client.connect(), CONNECT_MS, 'no answer');
  } catch (err) {
    destroyQuietly(client);
    throw new CL_ERR_LOAD_COORDINATOR(`reachable at ${redisHost(url)}`, `its Redis does not answer (${(err as { code?: string }).code ?? (err as Error).message}); check the address, the password and the network`);
  }
}

/** The Redis URL without its credentials, for messages. */
export function redisHost(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'the given Redis';
  }
}

/** Reads a stream from after `from`, waiting up to `blockMs` for something new (0: not at all). */
export async function readStream(client: RedisClient, key: string, from: string, blockMs: number, count = 500): Promise<{ id: string; fields: Record<string, string> }[]> {
  // XREAD's BLOCK 0 waits for ever: no BLOCK at all is "not at all".
  const res = await client.xRead({ key, id: from }, blockMs > 0 ? { BLOCK: blockMs, COUNT: count } : { COUNT: count }) as unknown as { messages: { id: string; message: Record<string, string> }[] }[] | null;
  if (!res) return [];
  return res.flatMap((s) => s.messages.map((m) => ({ id: m.id, fields: m.message })));
}

/** A stream's newest id (null: the stream is empty). */
export async function lastId(redis: RedisClient, key: string): Promise<string | null> {
  const last = await redis.xRevRange(key, '+', '-', { COUNT: 1 });
  return last[0]?.id ?? null;
}

export const thisHost = (): string => hostname().slice(0, 64);
