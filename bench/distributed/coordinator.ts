// The coordinator: admits workers that present the join token, watches their heartbeats, starts a
// run when a client asks, gives each worker a share of the schedule by its declared capacity, and
// moves shares when a worker fails (its heartbeat still for 3 s), leaves or joins. It holds no
// results: the client reads those from Redis. A run whose client has gone (its liveness key lapsed)
// is stopped: load never outlives the one who asked for it.
import { checkPlan } from '../loadgen.js';
import {
  EPOCH_NOTICE_MS, FRESH_MS, HEARTBEAT_LAPSE_MS, KEY_TTL_SECONDS, MAX_WORKERS, connect, connected, keys, lastId, newId, opened, readStream, redisClock, sealed, signingKey,
  type Control, type Heartbeat, type Request, type WorkerInfo,
} from './protocol.js';
import { weightsOf, type Epoch } from './shares.js';

export interface CoordinatorOptions {
  redisUrl: string;
  id: string;
  token: string;
  /** Every decision, as it is published (the command prints them). */
  onControl?: (c: Control) => void;
  /** A tick that failed (Redis away): said, and the next tick tries again. */
  onError?: (err: Error) => void;
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
  /** When its client was last seen alive (the coordinator's clock). */
  watchedAt: number;
}

const TICK_MS = 250;
/** Shares are announced this much more ahead than workers wait for (the trip, a stall, two clock estimates). */
const ANNOUNCE_MARGIN_MS = 100;
/** A client silent this long has gone: its run is stopped. */
const CLIENT_LAPSE_MS = 5_000;
/** After a run's end, how long its client has to say it has read everything. */
const RUN_GRACE_MS = 60_000;
/** The largest join message read (a worker's info is a few hundred bytes). */
const MAX_JOIN_BYTES = 4_096;

export async function runCoordinator(o: CoordinatorOptions): Promise<void> {
  const k = keys(o.id);
  const key = signingKey(o.token);
  const session = newId();
  const redis = connect(o.redisUrl, 'changelens-load-coordinator');
  await connected(redis, o.redisUrl);
  let now = await redisClock(redis);
  let lastTick = performance.now();
  const members = new Map<string, Member>();
  const runsSeen = new Set<string>();
  let running = null as Running | null;
  let lastRefusalEvent = 0;
  /** A share change not yet announced (its publish failed): retried every tick. */
  let pendingReshare = null as string | null;
  let clockReadAt = performance.now();
  // A run a previous coordinator left is nobody's now.
  await redis.del(k.current);
  // Only what comes after this coordinator starts: a worker still waiting joins again.
  let joinsFrom = (await lastId(redis, k.joins)) ?? '0-0';
  let requestsFrom = (await lastId(redis, k.requests)) ?? '0-0';

  const publish = async (c: Control): Promise<string> => {
    const id = await redis.xAdd(k.control, '*', sealed(key, 'control', now(), c), { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 10_000 } });
    await redis.expire(k.control, KEY_TTL_SECONDS);
    o.onControl?.(c);
    return id;
  };
  const active = (): Member[] => [...members.values()].filter((m) => m.state === 'active');
  /** From the next whole second at least EPOCH_NOTICE_MS ahead. */
  const nextSecond = (r: Running): number => Math.max(0, Math.ceil((now() - r.t0 + EPOCH_NOTICE_MS + ANNOUNCE_MARGIN_MS) / 1000) * 1000);
  /**
   * A joiner takes a share from the next second; a failed or departed worker's goes as soon as it
   * can be announced. Never before a share already announced: the newest decision must be the last
   * epoch, or an earlier snapshot (with a worker since failed) would come back into force.
   */
  const reshare = async (why: string, at: 'next second' | 'now'): Promise<void> => {
    if (!running || now() - running.t0 > running.endMs) return;
    const soonest = at === 'now' ? Math.max(0, Math.ceil(now() - running.t0 + EPOCH_NOTICE_MS + ANNOUNCE_MARGIN_MS)) : nextSecond(running);
    const epoch: Epoch = { fromMs: Math.max(soonest, running.epochs.at(-1)?.fromMs ?? 0), weights: weightsOf(active()) };
    pendingReshare = why;
    await publish({ kind: 'epoch', run: running.run, epoch, why });
    // Recorded once announced: if the announcement failed, the next tick announces again.
    running.epochs = [...running.epochs.filter((e) => e.fromMs !== epoch.fromMs), epoch];
    pendingReshare = null;
  };
  const atMs = (): number | null => (running ? Math.round(now() - running.t0) : null);

  const admit = async (fields: Record<string, string>): Promise<void> => {
    if (typeof fields.m !== 'string' || fields.m.length > MAX_JOIN_BYTES) return;
    let claimed: { b?: Partial<WorkerInfo> } | null;
    try {
      claimed = JSON.parse(fields.m) as { b?: Partial<WorkerInfo> };
    } catch {
      claimed = null;
    }
    const id = typeof claimed?.b?.id === 'string' && /^[A-Za-z0-9_.-]{1,100}$/.test(claimed.b.id) ? claimed.b.id : null;
    if (id === null) return; // Not even a worker's shape: nothing to answer.
    const info = opened<WorkerInfo>(key, fields, 'join');
    if (info && info.id === id && !opened<WorkerInfo>(key, fields, 'join', { now: now(), maxAgeMs: FRESH_MS })) return; // its own, but old: a copy, or read late (it joins again)
    if (!info || info.id !== id) {
      // Never a refusal in a member's name: anyone can write a bad join with an id they saw.
      if (members.get(id)?.state === 'active') return;
      await redis.set(k.admission(id), 'refused: the join token does not match', { EX: 60 });
      // Said at most once a second: a flood of bad joins must not flood the control stream.
      if (performance.now() - lastRefusalEvent > 1_000) {
        lastRefusalEvent = performance.now();
        await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: 'refused', worker: id, detail: 'the join token does not match' });
      }
      return;
    }
    const admitted = sealed(key, 'admission', now(), { worker: id, session });
    if (members.get(id)?.state === 'active') return void (await redis.set(k.admission(id), JSON.stringify(admitted), { EX: KEY_TTL_SECONDS })); // its join, again
    const bad = !(Number.isInteger(info.cores) && info.cores >= 1 && info.cores <= 4096) || !(info.maxRate > 0 && info.maxRate <= 1_000_000) || typeof info.host !== 'string' || info.host.length > 64;
    if (bad || active().length >= MAX_WORKERS) {
      const why = bad ? 'cores, max rate or host out of range' : `this coordinator already has ${MAX_WORKERS} workers`;
      await redis.set(k.admission(id), `refused: ${why}`, { EX: 60 });
      await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: 'refused', worker: id, detail: why });
      return;
    }
    members.set(id, { id, host: info.host, cores: info.cores, maxRate: info.maxRate, state: 'active', seq: -1, seenAt: performance.now() });
    await redis.set(k.admission(id), JSON.stringify(admitted), { EX: KEY_TTL_SECONDS });
    await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: 'joined', worker: id, detail: `${info.host}, ${info.cores} cores, max ${info.maxRate} req/s` });
    await reshare(`${id} joined`, 'next second');
  };

  const stopRun = async (why: string): Promise<void> => {
    if (!running) return;
    const stopAt = nextSecond(running);
    if (stopAt >= running.endMs) return;
    running.endMs = stopAt;
    await publish({ kind: 'stop', run: running.run, atMs: stopAt, why });
  };

  const request = async (fields: Record<string, string>): Promise<void> => {
    // Signed, for requests, and recent: an old request copied back is not a new one.
    const r = opened<Request>(key, fields, 'request', { now: now(), maxAgeMs: FRESH_MS });
    if (!r) return;
    if (r.kind === 'run') {
      const refuse = (reason: string) => publish({ kind: 'refused', request: r.request, reason });
      if (runsSeen.has(r.run)) return;
      if (running) return void (await refuse(`run ${running.run} is in progress`));
      try {
        checkPlan(r.plan);
      } catch (err) {
        return void (await refuse((err as Error).message));
      }
      const workers = active();
      if (workers.length === 0) return void (await refuse('no worker has joined: start `changelens bench worker --join …` on the load machines'));
      // Clocks drift: the shared one is read again for every run.
      now = await redisClock(redis);
      runsSeen.add(r.run);
      if (runsSeen.size > 10_000) runsSeen.delete(runsSeen.values().next().value!);
      // Time 0 a moment ahead, so every worker has read the run before its first arrival.
      const next: Running = { run: r.run, t0: Math.round(now() + 1_500), endMs: r.plan.durationSeconds * 1000, epochs: [{ fromMs: 0, weights: weightsOf(workers) }], watchedAt: performance.now() };
      const id = await publish({ kind: 'run', run: r.run, plan: r.plan, t0: next.t0, epochs: [...next.epochs], detail: r.detail === true });
      running = next;
      await redis.set(k.current, id, { EX: KEY_TTL_SECONDS });
    } else if (r.kind === 'stop' && running?.run === r.run) {
      await stopRun(r.why);
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
    // This coordinator stalled (or Redis did): the stall is not its workers' silence.
    const stalled = t - lastTick - 2 * TICK_MS;
    if (stalled > 0) for (const m of list) m.seenAt += stalled;
    lastTick = t;
    for (const [n, m] of list.entries()) {
      let hb: Heartbeat | null = null;
      try {
        hb = beats[n] ? opened<Heartbeat>(key, JSON.parse(beats[n]!) as Record<string, string>, 'heartbeat') : null;
      } catch {
        hb = null;
      }
      // Only its own, newer heartbeat counts: one copied from another worker or from before is not a sign of life.
      if (hb && (hb.worker !== m.id || hb.seq <= m.seq)) hb = null;
      if (hb) {
        m.seq = hb.seq;
        m.seenAt = t;
      }
      const gone = hb?.state === 'leaving' ? 'left' : t - m.seenAt > HEARTBEAT_LAPSE_MS ? 'failed' : null;
      if (!gone) continue;
      const detail = gone === 'left' ? 'stopped' : `no heartbeat for ${Math.round((t - m.seenAt) / 100) / 10} s`;
      // Said first: if saying it fails, it is found again next tick.
      await publish({ kind: 'event', run: running?.run ?? null, atMs: atMs(), event: gone, worker: m.id, detail });
      m.state = gone;
      await reshare(`${m.id} ${gone}`, 'now');
    }
    // A worker that failed or left is forgotten after a while: it may come back as a new one.
    for (const m of members.values()) if (m.state !== 'active' && t - m.seenAt > 10 * 60_000) members.delete(m.id);
  };

  /** The client's liveness: gone for 5 s, its run is stopped; past its end and gone, the run is over. */
  const watchClient = async (): Promise<void> => {
    if (!running) return;
    if (await redis.exists(k.watching(running.run))) running.watchedAt = performance.now();
    const silentMs = performance.now() - running.watchedAt;
    if (silentMs > CLIENT_LAPSE_MS) await stopRun('its client has gone');
    const pastEnd = now() - running.t0 - running.endMs;
    if (pastEnd > RUN_GRACE_MS || (pastEnd > 10_000 && silentMs > CLIENT_LAPSE_MS)) await endRun();
  };

  try {
    while (!o.signal.aborted) {
      try {
        await redis.set(k.alive, JSON.stringify({ session }), { PX: 5_000 });
        if (performance.now() - clockReadAt > 60_000) {
          now = await redisClock(redis);
          clockReadAt = performance.now();
        }
        if (pendingReshare !== null) await reshare(pendingReshare, 'now');
        for (const e of await readStream(redis, k.joins, joinsFrom, 0, 100)) {
          joinsFrom = e.id;
          await admit(e.fields);
        }
        for (const e of await readStream(redis, k.requests, requestsFrom, 0, 100)) {
          requestsFrom = e.id;
          await request(e.fields);
        }
        await watch();
        await watchClient();
      } catch (err) {
        // Redis away, or a command refused: said, and the next tick tries again.
        o.onError?.(err as Error);
      }
      await new Promise((r) => setTimeout(r, TICK_MS));
    }
  } finally {
    if (running) await endRun().catch(() => {});
    await redis.del(k.alive).catch(() => {});
    await redis.quit().catch(() => redis.destroy());
  }
}
