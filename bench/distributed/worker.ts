// A load worker: joins a coordinator with the token and its capacity, heartbeats every second, and
// for each run sends the arrivals of the one schedule the shares make its own, each at its intended
// time on the shared (Redis) clock. Every second it streams what completed — counts by second and by
// kind, and HdrHistogram deltas that add up exactly — and a final `done`.
import { availableParallelism } from 'node:os';
import { CL_ERR_LOAD_COORDINATOR, CL_ERR_LOAD_REFUSED } from '../../lib/errors.js';
import { checkPlan, drive, type LoadDelta, type LoadPlan, type LoadResult } from '../loadgen.js';
import {
  HEARTBEAT_EVERY_MS, KEY_TTL_SECONDS, connect, joinProof, keys, newId, opened, readStream, redisClock, sealed, signingKey, thisHost,
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
/** Results not yet in Redis (it was unreachable) are kept this many seconds, then dropped (the client reports the gap). */
const MAX_UNSENT = 120;

export async function runWorker(o: WorkerOptions): Promise<void> {
  const k = keys(o.join.coordinator);
  const key = signingKey(o.join.token);
  const say = o.say ?? (() => {});
  const id = `${(o.name ?? thisHost()).replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 60)}-${newId()}`;
  const info: WorkerInfo = { id, host: thisHost(), cores: availableParallelism(), maxRate: o.maxRate };
  const cmd = connect(o.join.redisUrl, 'changelens-load-worker');
  const reader = connect(o.join.redisUrl, 'changelens-load-worker-reader');
  await Promise.all([cmd.connect(), reader.connect()]);
  const clock = await redisClock(cmd);

  let beat: Heartbeat = { seq: 0, state: 'idle', run: null };
  const heartbeat = async (): Promise<void> => {
    beat = { ...beat, seq: beat.seq + 1 };
    await cmd.set(k.heartbeat(id), JSON.stringify(beat), { PX: 30_000 }).catch(() => {});
  };
  await heartbeat();
  const beating = setInterval(() => void heartbeat(), HEARTBEAT_EVERY_MS);

  try {
    await admitted();
    say(`joined coordinator ${o.join.coordinator} as ${id} (${info.cores} cores, max ${info.maxRate} req/s)`);
    // A run in progress is read from its start (the `current` entry itself included), else what comes next.
    const current = await cmd.get(k.current);
    let from = current !== null ? previousId(current) : ((await cmd.xRevRange(k.control, '+', '-', { COUNT: 1 }))[0]?.id ?? '0-0');
    let run = null as RunState | null;
    while (!o.signal.aborted) {
      const entries = await readStream(reader, k.control, from, 500).catch(async () => {
        await new Promise((r) => setTimeout(r, 500));
        return [];
      });
      for (const e of entries) {
        from = e.id;
        const c = opened<Control>(key, e.fields);
        if (!c) continue;
        if (c.kind === 'run' && !run) {
          run = start(c);
        } else if (c.kind === 'epoch' && run?.id === c.run) {
          run.owners.add(c.epoch);
        } else if (c.kind === 'stop' && run?.id === c.run) {
          run.stopAtMs = Math.min(run.stopAtMs, c.atMs);
        } else if (c.kind === 'event' && c.worker === id && c.event === 'failed') {
          // Declared failed (a stall longer than the lapse): its share has gone; join again for the next.
          say('the coordinator declared this worker failed (no heartbeat for 3 s); joining again');
          await cmd.xAdd(k.joins, '*', joinProof(key, info));
        } else if (c.kind === 'end' && run?.id === c.run) {
          run.stopAtMs = -Infinity;
        }
      }
      if (run?.finished) run = null;
    }
    // Stopping: the share goes at once (the coordinator reads "leaving"), what is in flight finishes.
    beat = { ...beat, state: 'leaving' };
    await heartbeat();
    if (run) {
      run.stopAtMs = -Infinity;
      await run.done;
    }
  } finally {
    clearInterval(beating);
    // The last heartbeat ("leaving") stays until it expires: the coordinator must read it to know.
    await Promise.all([cmd.quit().catch(() => cmd.destroy()), reader.quit().catch(() => reader.destroy())]);
  }

  async function admitted(): Promise<void> {
    const deadline = performance.now() + ADMISSION_WAIT_MS;
    let sentAt = -Infinity;
    while (performance.now() < deadline && !o.signal.aborted) {
      if (!(await cmd.get(k.alive))) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      // Joins again every 3 s: a coordinator reads only what comes after it starts.
      if (performance.now() - sentAt > 3_000) {
        await cmd.xAdd(k.joins, '*', joinProof(key, info), { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 10_000 } });
        await cmd.expire(k.joins, KEY_TTL_SECONDS);
        sentAt = performance.now();
      }
      const answer = await cmd.get(k.admission(id));
      if (answer === 'ok') return;
      if (answer?.startsWith('refused')) throw new CL_ERR_LOAD_REFUSED(answer.replace(/^refused: /, ''));
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new CL_ERR_LOAD_COORDINATOR(`${o.join.coordinator} at ${redisHost(o.join.redisUrl)}`, `none admitted this worker within ${ADMISSION_WAIT_MS / 1000} s`);
  }

  function start(c: Extract<Control, { kind: 'run' }>): RunState {
    const state: RunState = { id: c.run, owners: new Owners([...c.epochs]), stopAtMs: Infinity, done: Promise.resolve(), finished: false };
    const plan: LoadPlan = { ...c.plan, signal: undefined, onResult: undefined, processes: 1 };
    try {
      checkPlan(plan);
    } catch (err) {
      say(`run ${c.run} not started: ${(err as Error).message}`);
      state.finished = true;
      return state;
    }
    beat = { ...beat, state: 'running', run: c.run };
    say(`run ${c.run}: ${plan.rate} req/s for ${plan.durationSeconds} s against ${plan.target}`);
    const resultsKey = k.results(c.run);
    // Results leave in order; while Redis is away they wait (up to MAX_UNSENT), then go together.
    const unsent: ResultMessage[] = [];
    let sending: Promise<void> = Promise.resolve();
    const send = (m: ResultMessage): Promise<void> => {
      unsent.push(m);
      if (unsent.length > MAX_UNSENT) unsent.shift();
      sending = sending.then(async () => {
        while (unsent.length) {
          await cmd.xAdd(resultsKey, '*', sealed(key, unsent[0]));
          unsent.shift();
        }
        await cmd.expire(resultsKey, KEY_TTL_SECONDS);
      }).catch(() => {});
      return sending;
    };
    const t0 = performance.now() + (c.t0 - clock());
    state.done = (async () => {
      try {
        const result = await drive(plan, {
          t0, epoch0: c.t0,
          owns: (i, atMs) => state.owners.ownerOf(i, atMs) === id,
          stopAtMs: () => state.stopAtMs,
          onFlush: (delta: LoadDelta) => void send({ kind: 'delta', worker: id, delta }),
          detail: c.detail === true,
        });
        await send({ kind: 'done', worker: id, sent: result.sent });
        say(`run ${c.run}: sent ${result.sent}, failed ${result.failed}`);
        o.onRun?.(c.run, result);
      } catch (err) {
        say(`run ${c.run} failed here: ${(err as Error).message}`);
      } finally {
        beat = { ...beat, state: beat.state === 'leaving' ? 'leaving' : 'idle', run: null };
      }
    })().then(() => { state.finished = true; });
    return state;
  }
}

interface RunState {
  id: string;
  owners: Owners;
  /** No arrival due at or after this (ms from the run's time 0). */
  stopAtMs: number;
  done: Promise<void>;
  finished: boolean;
}

/** The id just before `id` (XREAD returns what comes after the id it is given). */
function previousId(id: string): string {
  const [ms, seq] = id.split('-').map(Number) as [number, number];
  return seq > 0 ? `${ms}-${seq - 1}` : `${ms - 1}-18446744073709551615`;
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
