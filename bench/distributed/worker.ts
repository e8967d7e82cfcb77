// A load worker: joins a coordinator with the token and its capacity, heartbeats every second, and
// for each run sends the arrivals of the one schedule the shares make its own, each at its intended
// time on the shared (Redis) clock. Every second it streams what completed — counts by second and by
// kind, and HdrHistogram deltas that add up exactly — and a final `done`.
import { availableParallelism } from 'node:os';
import { CL_ERR_LOAD_COORDINATOR, CL_ERR_LOAD_REFUSED } from '../../lib/errors.js';
import { checkPlan, drive, type LoadDelta, type LoadPlan, type LoadResult } from '../loadgen.js';
import {
  EPOCH_NOTICE_MS, HEARTBEAT_EVERY_MS, KEY_TTL_SECONDS, connect, connected, keys, lastId, newId, opened, readStream, redisClock, redisHost, sealed, signingKey, streamId, thisHost, unseal,
  type Control, type Heartbeat, type JoinInfo, type ResultMessage, type WorkerInfo,
} from './protocol.js';
import { Owners } from './shares.js';

export interface WorkerOptions {
  join: JoinInfo;
  /** The rate this worker says it can send (its weight against the others). */
  maxRate: number;
  /** A name for it (default: the host name and a random suffix). */
  name?: string;
  signal: AbortSignal;
  /** Lines worth telling the person who started it. */
  say?: (line: string) => void;
  /** Each run's own totals, histograms included, when it has sent its share. */
  onRun?: (run: string, result: LoadResult) => void;
}

/** How long a worker waits to be admitted before it gives up. */
const ADMISSION_WAIT_MS = 15_000;
/** Results not yet in Redis (it was away) are kept up to this many seconds' worth; older ones are dropped (the client reports the gap). */
const MAX_UNSENT = 120;
/** How long the last results may take to reach Redis at the end of a run. */
const DRAIN_MS = 30_000;
/** The control stream is read this often: it bounds how stale a worker's view of the shares can be. */
const CONTROL_BLOCK_MS = 100;
/** Entries read at once from the control stream (fewer back means it has read everything). */
const CONTROL_COUNT = 500;

interface RunState {
  id: string;
  /** Redis time of its time 0. */
  t0: number;
  durationMs: number;
  owners: Owners;
  /** No arrival due at or after this (ms from the run's time 0). */
  stopAtMs: number;
  done: Promise<void>;
  finished: boolean;
}

export async function runWorker(o: WorkerOptions): Promise<void> {
  const k = keys(o.join.coordinator);
  const key = signingKey(o.join.token);
  const say = o.say ?? (() => {});
  const id = `${(o.name ?? thisHost()).replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 60)}-${newId()}`;
  const info: WorkerInfo = { id, host: thisHost(), cores: availableParallelism(), maxRate: o.maxRate };
  const cmd = connect(o.join.redisUrl, 'changelens-load-worker');
  const reader = connect(o.join.redisUrl, 'changelens-load-worker-reader');
  await connected(cmd, o.join.redisUrl);
  await connected(reader, o.join.redisUrl);
  let clock = await redisClock(cmd);
  const ran = new Set<string>();
  /** Everything in the control stream up to this Redis time has been read (and acted on). */
  let readUpTo = -Infinity;
  const waiting: { at: number; resolve: () => void }[] = [];

  let beat: Heartbeat = { worker: id, seq: 0, state: 'idle', run: null };
  const heartbeat = async (): Promise<void> => {
    beat = { ...beat, seq: beat.seq + 1 };
    await cmd.set(k.heartbeat(id), JSON.stringify(sealed(key, 'heartbeat', clock(), beat)), { PX: 30_000 }).catch(() => {});
  };
  await heartbeat();
  const beating = setInterval(() => void heartbeat(), HEARTBEAT_EVERY_MS);
  let run = null as RunState | null;
  let from = '0-0';
  let session = '';
  /** Redis time of the latest admission: a share of a run it joins late cannot start before. */
  let admittedAt = -Infinity;
  let rejoining: Promise<void> | null = null;
  let needJoin = false;
  let clockReadAt = performance.now();

  /** Everything up to `t` (Redis time) has been read: drive()'s waits for it end. */
  const markRead = (t: number): void => {
    readUpTo = Math.max(readUpTo, t);
    for (const w of waiting.splice(0)) if (w.at <= readUpTo) w.resolve(); else waiting.push(w);
  };

  /** One read of the control stream, acted on; moves the read mark. */
  const readControl = async (blockMs: number): Promise<void> => {
    const readAt = clock();
    let entries: { id: string; fields: Record<string, string> }[];
    try {
      entries = await readStream(reader, k.control, from, blockMs, CONTROL_COUNT);
    } catch (err) {
      // A bad id where we read from (a forged `current`): from what is there now. Redis away: keep our place.
      if (/invalid stream id/i.test((err as Error).message)) from = (await lastId(cmd, k.control).catch(() => null)) ?? '0-0';
      await new Promise((r) => setTimeout(r, 200));
      return;
    }
    for (const e of entries) {
      from = e.id;
      const c = opened<Control>(key, e.fields, 'control');
      if (c) await act(c);
    }
    // Nothing new while it blocked: nothing was added until it gave up waiting (just now). Fewer
    // than asked for: everything added before this read began has been seen. (20 ms for the trip.)
    if (entries.length === 0) markRead(clock() - 20);
    else if (entries.length < CONTROL_COUNT) markRead(readAt - 20);
  };

  const act = async (c: Control): Promise<void> => {
    // A new run replaces one that is over (still draining its last results) or has no share here.
    if (c.kind === 'run' && !o.signal.aborted && (!run || run.finished || !inShares(run) || scheduleOver(run))) {
      if (run && !run.finished && !scheduleOver(run)) run.stopAtMs = -Infinity;
      run = await start(c);
    } else if (c.kind === 'epoch' && run?.id === c.run) {
      run.owners.add(c.epoch);
    } else if (c.kind === 'stop' && run?.id === c.run) {
      run.stopAtMs = Math.min(run.stopAtMs, c.atMs);
    } else if (c.kind === 'event' && c.worker === id && c.event === 'failed') {
      // Declared failed (a stall longer than the lapse): its share has gone; join again for the next.
      say('the coordinator declared this worker failed (no heartbeat for 3 s); joining again');
      needJoin = true;
    } else if (c.kind === 'end' && run?.id === c.run) {
      run.stopAtMs = -Infinity;
    }
  };

  /** Joins again in the background: reading the control stream (and so sending) goes on meanwhile. */
  const rejoin = (): void => {
    if (rejoining) return;
    rejoining = admitted().then((a) => {
      session = a.session;
      admittedAt = a.at;
      needJoin = false;
    }, (err: Error) => say(`could not join again (${err.message}); trying again`)).finally(() => { rejoining = null; });
  };

  try {
    // Where to read the control stream from: what is there before the join (a run that starts
    // after it must not be missed), or the start of a run in progress, whichever is earlier.
    const before = (await lastId(cmd, k.control)) ?? '0-0';
    ({ session, at: admittedAt } = await admitted());
    say(`joined coordinator ${o.join.coordinator} as ${id} (${info.cores} cores, max ${info.maxRate} req/s)`);
    const current = streamId(await cmd.get(k.current));
    from = current !== null && compareIds(previousId(current), before) < 0 ? previousId(current) : before;
    while (!o.signal.aborted) {
      await readControl(CONTROL_BLOCK_MS);
      if (run?.finished) run = null;
      // Clocks drift: between runs the shared one is read again every minute.
      if (!run && performance.now() - clockReadAt > 60_000) {
        clock = await redisClock(cmd).catch(() => clock);
        clockReadAt = performance.now();
      }
      // A new coordinator (restarted): what the old one ran is over; join the new one.
      const alive = await cmd.get(k.alive).catch(() => null);
      if (alive !== null && !alive.includes(`"${session}"`) && !rejoining) {
        if (run && !run.finished) run.stopAtMs = Math.min(run.stopAtMs, clock() - run.t0);
        say('the coordinator restarted; joining it again');
        needJoin = true;
      }
      if (needJoin) rejoin();
    }
    // Stopping: say so ("leaving"), and keep sending until the share has moved to the others.
    beat = { ...beat, state: 'leaving' };
    await heartbeat();
    if (run && !run.finished) {
      const handedOver = await handOver(run);
      run.stopAtMs = Math.min(run.stopAtMs, handedOver);
      // Nothing more is read: nothing drive() waits for may wait longer.
      markRead(Infinity);
      await run.done;
    }
  } finally {
    clearInterval(beating);
    markRead(Infinity);
    // The last heartbeat ("leaving") stays until it expires: the coordinator must read it to know.
    await Promise.all([cmd.quit().catch(() => cmd.destroy()), reader.quit().catch(() => reader.destroy())]);
  }

  /** Joins and waits for the coordinator's signed answer: its session, and when it admitted this worker. */
  async function admitted(): Promise<{ session: string; at: number }> {
    const deadline = performance.now() + ADMISSION_WAIT_MS;
    let sentAt = -Infinity;
    await cmd.del(k.admission(id));
    while (performance.now() < deadline && !o.signal.aborted) {
      if (!(await cmd.get(k.alive))) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      // Joins again every 3 s: a coordinator reads only what comes after it starts.
      if (performance.now() - sentAt > 3_000) {
        await cmd.xAdd(k.joins, '*', sealed(key, 'join', clock(), info), { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 10_000 } });
        await cmd.expire(k.joins, KEY_TTL_SECONDS);
        sentAt = performance.now();
      }
      const answer = await cmd.get(k.admission(id));
      if (answer?.startsWith('refused')) throw new CL_ERR_LOAD_REFUSED(answer.replace(/^refused: /, ''));
      if (answer) {
        try {
          const ok = unseal<{ worker: string; session: string }>(key, JSON.parse(answer) as Record<string, string>, 'admission');
          if (ok?.body.worker === id) return { session: ok.body.session, at: ok.at };
        } catch {
          // Not the coordinator's: keep waiting for it.
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new CL_ERR_LOAD_COORDINATOR(`${o.join.coordinator} at ${redisHost(o.join.redisUrl)}`, `none admitted this worker within ${ADMISSION_WAIT_MS / 1000} s`);
  }

  function scheduleOver(r: RunState): boolean {
    return clock() >= r.t0 + Math.min(r.durationMs, r.stopAtMs);
  }

  function inShares(r: RunState): boolean {
    return r.owners.epochs.some((e) => id in e.weights);
  }

  /** Waits (up to 3 s) for the epoch that takes this worker's share away; returns when it takes effect. */
  async function handOver(r: RunState): Promise<number> {
    const until = performance.now() + 3_000;
    while (performance.now() < until) {
      const last = r.owners.epochs.at(-1);
      if (last && !(id in last.weights)) return last.fromMs;
      await readControl(100);
    }
    return clock() - r.t0;
  }

  async function start(c: Extract<Control, { kind: 'run' }>): Promise<RunState> {
    const state: RunState = { id: c.run, t0: c.t0, durationMs: c.plan.durationSeconds * 1000, owners: new Owners([...c.epochs]), stopAtMs: Infinity, done: Promise.resolve(), finished: false };
    const plan: LoadPlan = { ...c.plan, signal: undefined, onResult: undefined, processes: 1 };
    // Clocks drift: the shared one is read again for every run.
    clock = await redisClock(cmd).catch(() => clock);
    try {
      checkPlan(plan);
      // A run read again (a copy put back in the stream), or one already over, is not run.
      if (ran.has(c.run)) throw new Error('already run here');
      if (c.t0 + plan.durationSeconds * 1000 < clock()) throw new Error('its schedule is over');
    } catch (err) {
      say(`run ${c.run} not started: ${(err as Error).message}`);
      state.finished = true;
      return state;
    }
    ran.add(c.run);
    beat = { ...beat, state: 'running', run: c.run };
    say(`run ${c.run}: ${plan.rate} req/s for ${plan.durationSeconds} s against ${plan.target}`);
    const results = resultSender(c.run);
    const t0 = performance.now() + (c.t0 - clock());
    // Arrivals due before its admission were never its own (a joiner's share starts after it).
    const joinedAtMs = Math.max(0, admittedAt - c.t0);
    state.done = (async () => {
      try {
        const result = await drive(plan, {
          t0, epoch0: c.t0, fromMs: joinedAtMs,
          owns: (i, atMs) => state.owners.ownerOf(i, atMs) === id,
          // Ownership of an arrival is final once every share announced before it (EPOCH_NOTICE_MS ahead) has been read.
          ready: (atMs) => untilRead(c.t0 + atMs - EPOCH_NOTICE_MS),
          stopAtMs: () => state.stopAtMs,
          onFlush: (delta: LoadDelta) => results.send({ kind: 'delta', delta }),
          detail: c.detail === true,
        });
        results.send({ kind: 'done', sent: result.sent });
        await results.drained();
        say(`run ${c.run}: sent ${result.sent}, failed ${result.failed}`);
        o.onRun?.(c.run, result);
      } catch (err) {
        say(`run ${c.run} failed here: ${(err as Error).message}`);
      } finally {
        beat = { ...beat, state: beat.state === 'leaving' ? 'leaving' : 'idle', run: null };
        state.finished = true;
      }
    })();
    return state;
  }

  /** Resolves once the control stream has been read up to Redis time `at` (at once if it has). */
  function untilRead(at: number): Promise<void> | undefined {
    if (at <= readUpTo) return undefined;
    return new Promise((resolve) => waiting.push({ at, resolve }));
  }

  /** A run's results, in order, signed and numbered; while Redis is away they wait (the oldest unsent dropped past MAX_UNSENT). */
  function resultSender(runId: string) {
    const resultsKey = k.results(runId);
    const queue: ResultMessage[] = [];
    let seq = 0;
    let sending: Promise<void> | null = null;
    const pump = async (): Promise<void> => {
      while (queue.length) {
        try {
          await cmd.xAdd(resultsKey, '*', sealed(key, 'result', clock(), queue[0]));
          queue.shift();
          await cmd.expire(resultsKey, KEY_TTL_SECONDS);
        } catch {
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      sending = null;
    };
    return {
      send(m: { kind: 'delta'; delta: LoadDelta } | { kind: 'done'; sent: number }): void {
        queue.push({ ...m, run: runId, worker: id, seq: seq++ } as ResultMessage);
        // Never the one being sent (the first): the oldest waiting after it.
        if (queue.length > MAX_UNSENT) queue.splice(1, 1);
        sending ??= pump();
      },
      async drained(): Promise<void> {
        const deadline = performance.now() + DRAIN_MS;
        while (queue.length && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      },
    };
  }
}

/** The id just before `id` (XREAD returns what comes after the id it is given). */
function previousId(id: string): string {
  const [ms, seq] = id.split('-').map(BigInt) as [bigint, bigint];
  return seq > 0n ? `${ms}-${seq - 1n}` : `${ms - 1n}-18446744073709551615`;
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}
