// The coordinator: admits workers that present the join token, watches their heartbeats, starts a
// run when a client asks, gives each worker a share of the schedule by its declared capacity, and
// moves shares when a worker fails (its heartbeat still for 3 s), leaves or joins — always from the
// next whole second, announced ahead. It holds no results: the client reads those from Redis.
import type { RedisClient } from '../../lib/redis.js';
import { checkPlan } from '../loadgen.js';
import {
  EPOCH_NOTICE_MS, HEARTBEAT_LAPSE_MS, KEY_TTL_SECONDS, MAX_WORKERS, connect, keys, opened, readStream, redisClock, sealed, signingKey,
  type Control, type Heartbeat, type Request, type WorkerInfo,
} from './protocol.js';
import { weightsOf, type Epoch } from './shares.js';

export interface CoordinatorOptions {
  redisUrl: string;
  id: string;
  token: string;
  /** Every decision, as it is published (the command prints them). */
  onControl?: (c: Control) => void;
  signal: AbortSignal;
}

interface Member extends WorkerInfo {
  state: 'active' | 'failed' | 'left';
  seq: number;
  /** When (the coordinator's clock) its heartbeat last moved. */
  seenAt: number;
}

interface Running {
  run: string;
  t0: number;
  /** When the schedule ends (ms from t0), or a stop's moment. */
  endMs: number;
  epochs: Epoch[];
}

const TICK_MS = 250;
/** A run nobody has called finished is dropped this long after its schedule ended. */
const RUN_GRACE_MS = 120_000;

export async function runCoordinator(o: CoordinatorOptions): Promise<void> {
  const k = keys(o.id);
  const key = signingKey(o.token);
  const redis = connect(o.redisUrl, 'changelens-load-coordinator');
  await redis.connect();
  const now = await redisClock(redis);
  const members = new Map<string, Member>();
  let running = null as Running | null;
  // Only what comes after this coordinator starts: a worker still waiting joins again.
  let joinsFrom = (await lastId(redis, k.joins)) ?? '0-0';
  let requestsFrom = (await lastId(redis, k.requests)) ?? '0-0';

  const publish = async (c: Control): Promise<string> => {
    const id = await redis.xAdd(k.control, '*', sealed(key, c), { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 10_000 } });
    await redis.expire(k.control, KEY_TTL_SECONDS);
    o.onControl?.(c);
    return id;
  };
  const active = (): Member[] => [...members.values()].filter((m) => m.state === 'active');
  /** From the next whole second at least EPOCH_NOTICE_MS ahead. */
  const nextSecond = (r: Running): number => Math.max(0, Math.ceil((now() - r.t0 + EPOCH_NOTICE_MS) / 1000) * 1000);
  /** A joiner takes a share from the next second; a failed or departed worker's goes as soon as it can be announced. */
  const reshare = async (why: string, at: 'next second' | 'now'): Promise<void> => {
    if (!running || now() - running.t0 > running.endMs) return;
    const fromMs = at === 'now' ? Math.max(0, Math.ceil(now() - running.t0 + EPOCH_NOTICE_MS)) : nextSecond(running);
    const epoch: Epoch = { fromMs, weights: weightsOf(active()) };
    running.epochs.push(epoch);
    await publish({ kind: 'epoch', run: running.run, epoch, why });
  };
  const atMs = (): number | null => (running ? Math.round(now() - running.t0) : null);

  const admit = async (fields: Record<string, string>): Promise<void> => {
    const info = opened<WorkerInfo>(key, fields);
    let claimed: Partial<WorkerInfo> | null = null;
    try {
      claimed = typeof fields.m === 'string' && fields.m.length < 4096 ? (JSON.parse(fields.m) as Partial<WorkerInfo>) : null;
    } catch {
      claimed = null;
    }
    const id = typeof claimed?.id === 'string' && /^[A-Za-z0-9_.-]{1,100}$/.test(claimed.id) ? claimed.id : null;
    if (id === null) return; // Not even a worker's shape: nothing to answer.
    if (!info) {
      await redis.set(k.admission(id), 'refused: the join token does not match', { EX: 60 });
      await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: 'refused', worker: id, detail: 'the join token does not match' });
      return;
    }
    const bad = !(Number.isInteger(info.cores) && info.cores >= 1 && info.cores <= 4096) || !(info.maxRate > 0 && info.maxRate <= 1_000_000) || typeof info.host !== 'string' || info.host.length > 64;
    if (bad || members.size >= MAX_WORKERS) {
      const why = bad ? 'cores, max rate or host out of range' : `this coordinator already has ${MAX_WORKERS} workers`;
      await redis.set(k.admission(id), `refused: ${why}`, { EX: 60 });
      await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: 'refused', worker: id, detail: why });
      return;
    }
    if (members.get(id)?.state === 'active') return void (await redis.set(k.admission(id), 'ok', { EX: KEY_TTL_SECONDS })); // its join, again
    members.set(id, { id, host: info.host, cores: info.cores, maxRate: info.maxRate, state: 'active', seq: -1, seenAt: performance.now() });
    await redis.set(k.admission(id), 'ok', { EX: KEY_TTL_SECONDS });
    await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: 'joined', worker: id, detail: `${info.host}, ${info.cores} cores, max ${info.maxRate} req/s` });
    await reshare(`${id} joined`, 'next second');
  };

  const request = async (fields: Record<string, string>): Promise<void> => {
    const r = opened<Request>(key, fields);
    if (!r) return; // Unsigned: not from anyone holding the token.
    if (r.kind === 'run') {
      const refuse = (reason: string) => publish({ kind: 'refused', request: r.request, reason });
      if (running) return void (await refuse(`run ${running.run} is in progress`));
      try {
        checkPlan(r.plan);
      } catch (err) {
        return void (await refuse((err as Error).message));
      }
      const workers = active();
      if (workers.length === 0) return void (await refuse('no worker has joined: start `changelens bench worker --join …` on the load machines'));
      const endMs = r.plan.durationSeconds * 1000;
      // Time 0 a moment ahead, so every worker has read the run before its first arrival.
      running = { run: r.run, t0: Math.round(now() + 1_500), endMs, epochs: [{ fromMs: 0, weights: weightsOf(workers) }] };
      const id = await publish({ kind: 'run', run: r.run, plan: r.plan, t0: running.t0, epochs: [...running.epochs], detail: r.detail === true });
      await redis.set(k.current, id, { EX: KEY_TTL_SECONDS });
    } else if (r.kind === 'stop' && running?.run === r.run) {
      const stopAt = nextSecond(running);
      if (stopAt < running.endMs) {
        running.endMs = stopAt;
        await publish({ kind: 'stop', run: r.run, atMs: stopAt });
      }
    } else if (r.kind === 'finished' && running?.run === r.run) {
      await endRun();
    }
  };

  const endRun = async (): Promise<void> => {
    if (!running) return;
    const { run } = running;
    running = null;
    await redis.del(k.current);
    await publish({ kind: 'end', run });
  };

  /** Heartbeats: a lapse of 3 s is a failure, "leaving" a departure; either moves the share at once. */
  const watch = async (): Promise<void> => {
    const list = active();
    if (list.length === 0) return;
    const beats = await redis.mGet(list.map((m) => k.heartbeat(m.id)));
    const t = performance.now();
    for (const [n, m] of list.entries()) {
      let hb: Heartbeat | null = null;
      try {
        hb = beats[n] ? (JSON.parse(beats[n]!) as Heartbeat) : null;
      } catch {
        hb = null;
      }
      if (hb && hb.seq !== m.seq) {
        m.seq = hb.seq;
        m.seenAt = t;
      }
      const gone = hb?.state === 'leaving' ? 'left' : t - m.seenAt > HEARTBEAT_LAPSE_MS ? 'failed' : null;
      if (!gone) continue;
      m.state = gone;
      const detail = gone === 'left' ? 'stopped' : `no heartbeat for ${Math.round((t - m.seenAt) / 100) / 10} s`;
      await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: gone, worker: m.id, detail });
      await reshare(`${m.id} ${gone}`, 'now');
    }
    // A worker that failed is forgotten after a while: it may come back as a new one.
    for (const m of members.values()) if (m.state !== 'active' && t - m.seenAt > 10 * 60_000) members.delete(m.id);
  };

  try {
    while (!o.signal.aborted) {
      await redis.set(k.alive, JSON.stringify({ at: Date.now() }), { PX: 5_000 });
      for (const e of await readStream(redis, k.joins, joinsFrom, 0, 100).catch(() => [])) {
        joinsFrom = e.id;
        await admit(e.fields);
      }
      for (const e of await readStream(redis, k.requests, requestsFrom, 0, 100).catch(() => [])) {
        requestsFrom = e.id;
        await request(e.fields);
      }
      await watch();
      if (running && now() - running.t0 > running.endMs + RUN_GRACE_MS) await endRun();
      await new Promise((r) => setTimeout(r, TICK_MS));
    }
  } finally {
    if (running) await endRun().catch(() => {});
    await redis.del(k.alive).catch(() => {});
    await redis.quit().catch(() => redis.destroy());
  }
}

/** A stream's newest id (null: the stream is empty), so a new coordinator reads only what comes after it starts. */
async function lastId(redis: RedisClient, key: string): Promise<string | null> {
  const last = await redis.xRevRange(key, '+', '-', { COUNT: 1 });
  return last[0]?.id ?? null;
}
