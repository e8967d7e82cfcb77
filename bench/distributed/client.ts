// A run through a coordinator's workers, from the side that asked for it (`bench load|run|matrix
// --coordinator`): it hands the plan to the coordinator, reads every worker's per-second results and
// the coordinator's decisions, and adds them up exactly — one histogram of every recorded latency,
// counts by second, status and kind — then says who ran what and where coverage had a gap.
import { CL_ERR_LOAD_COORDINATOR, CL_ERR_LOAD_REFUSED } from '../../lib/errors.js';
import { HistogramSum, checkPlan, type LoadPlan, type LoadResult } from '../loadgen.js';
import { connect, connected, keys, lastId, newId, opened, redisClock, redisHost, sealed, signingKey, type Control, type JoinInfo, type Request, type ResultMessage } from './protocol.js';
import { NOBODY, Owners, coverageGaps, plannedCounts, type Gap } from './shares.js';

export interface WorkerReport {
  id: string;
  /** What it was meant to send (its shares of the schedule) and what completed. */
  planned: number;
  sent: number;
  failed: number;
  plannedRate: number;
  achievedRate: number;
  /** ran: to the end; failed: its heartbeat lapsed; left: it was stopped; silent: no final report came. */
  outcome: 'ran' | 'failed' | 'left' | 'silent';
}

export interface DistributedReport {
  coordinator: string;
  run: string;
  /** The schedule's arrivals up to its end (or the stop) and the rate they make. */
  planned: number;
  plannedRate: number;
  achievedRate: number;
  seconds: number;
  workers: WorkerReport[];
  /** Joins, failures, departures and refusals during the run (ms from its time 0). */
  events: { atMs: number | null; event: string; worker: string; detail: string }[];
  /** Every change of shares: from when, why, and the weights. */
  shares: { fromMs: number; why: string; weights: Record<string, number> }[];
  gaps: Gap[];
}

export type DistributedResult = LoadResult & { distributed: DistributedReport };

/** How long the coordinator has to take a run, and how long after its end silent workers are waited for. */
const ANSWER_MS = 5_000;
const STRAGGLER_MS = 30_000;

export async function runDistributed(plan: LoadPlan, join: JoinInfo): Promise<DistributedResult> {
  checkPlan(plan);
  const k = keys(join.coordinator);
  const key = signingKey(join.token);
  const where = `${join.coordinator} at ${redisHost(join.redisUrl)}`;
  const redis = connect(join.redisUrl, 'changelens-load-client');
  await connected(redis, join.redisUrl);
  let over = false;
  let ask: ((r: Request) => Promise<void>) | null = null;
  let run = '';
  try {
    if (!(await redis.get(k.alive))) throw new CL_ERR_LOAD_COORDINATOR(where, 'none is running (start `changelens bench coordinator`)');
    const clock = await redisClock(redis);
    const toLocal = Date.now() - clock();
    let controlFrom = (await lastId(redis, k.control)) ?? '0-0';
    run = newId();
    const request = newId();
    const { signal, onResult, processes: _p, ...wire } = plan;
    ask = async (r: Request): Promise<void> => {
      await redis.xAdd(k.requests, '*', sealed(key, 'request', clock(), r), { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 1_000 } });
      await redis.expire(k.requests, 3_600);
    };
    // Alive while it reads: the coordinator stops a run whose client has gone.
    const watching = (): Promise<unknown> => redis.set(k.watching(run), '1', { PX: 5_000 });
    await watching();
    await ask({ kind: 'run', request, run, plan: wire, detail: onResult !== undefined });

    let started: Extract<Control, { kind: 'run' }> | null = null;
    const owners = new Owners([]);
    const shares: DistributedReport['shares'] = [];
    const events: DistributedReport['events'] = [];
    let stopAtMs = Infinity;
    const sum = { latency: new HistogramSum(), service: new HistogramSum(), lag: new HistogramSum() };
    const statuses: Record<string, number> = {};
    const failures: Record<string, number> = {};
    const byEndpoint: Record<string, number> = {};
    const sentBy = new Map<string, Map<number, number>>();
    const totals = new Map<string, { sent: number; failed: number }>();
    const done = new Set<string>();
    const gone = new Map<string, 'failed' | 'left'>();
    /** worker:seq of every result read: a copy is not counted twice. */
    const counted = new Set<string>();
    let resultsFrom = '0-0';
    let stopAsked = false;
    const waitUntil = performance.now() + ANSWER_MS;

    const onControl = (c: Control): void => {
      if (c.kind === 'refused' && c.request === request) throw new CL_ERR_LOAD_REFUSED(c.reason);
      if (c.kind === 'run' && c.run === run) {
        started = c;
        for (const e of c.epochs) { owners.add(e); shares.push({ fromMs: e.fromMs, why: 'start', weights: e.weights }); }
      } else if (c.kind === 'epoch' && c.run === run) {
        owners.add(c.epoch);
        shares.push({ fromMs: c.epoch.fromMs, why: c.why, weights: c.epoch.weights });
      } else if (c.kind === 'stop' && c.run === run) {
        stopAtMs = Math.min(stopAtMs, c.atMs);
      } else if (c.kind === 'event' && started && (c.run === run || c.run === null)) {
        events.push({ atMs: c.atMs, event: c.event, worker: c.worker, detail: c.detail });
        if (c.event === 'failed' || c.event === 'left') gone.set(c.worker, c.event);
        // One declared failed after a stall may join again and get a share: it is waited for again.
        if (c.event === 'joined') gone.delete(c.worker);
      }
    };
    const onResultMessage = (m: ResultMessage): void => {
      if (m.run !== run || !participants().has(m.worker) || counted.has(`${m.worker}:${m.seq}`)) return;
      counted.add(`${m.worker}:${m.seq}`);
      if (m.kind === 'done') { done.add(m.worker); return; }
      const d = m.delta;
      sum.latency.add(d.latency, d.latencyMaxUs);
      sum.service.add(d.serviceTime, d.serviceMaxUs);
      sum.lag.add(d.sendLag, d.sendLagMaxUs);
      addAll(statuses, d.statuses);
      addAll(failures, d.failures);
      addAll(byEndpoint, d.byEndpoint);
      const mine = sentBy.get(m.worker) ?? new Map<number, number>();
      sentBy.set(m.worker, mine);
      const t = totals.get(m.worker) ?? { sent: 0, failed: 0 };
      totals.set(m.worker, t);
      for (const [second, [n, bad]] of Object.entries(d.bySecond)) {
        mine.set(Number(second), (mine.get(Number(second)) ?? 0) + n);
        t.sent += n;
        t.failed += bad;
      }
      if (onResult && d.requests && started) {
        const t0 = started.t0 + toLocal;
        for (const [atMs, us, status, color, endpoint] of d.requests) {
          const e = wire.mix[endpoint];
          onResult({ intendedAt: t0 + atMs, latencyMs: us / 1000, status, color: color === '' ? null : color, endpoint: e ? `${e.method} ${e.path}` : undefined });
        }
      }
    };
    /** Every worker that had a share at some point. */
    const participants = (): Set<string> => new Set(owners.epochs.flatMap((e) => Object.keys(e.weights)));
    const finished = (): boolean => {
      if (!started) return false;
      const endMs = Math.min(started.plan.durationSeconds * 1000, stopAtMs);
      if (clock() < started.t0 + endMs) return false;
      return [...participants()].every((w) => done.has(w) || gone.has(w));
    };

    for (;;) {
      if (signal?.aborted && started && !stopAsked) {
        stopAsked = true;
        await ask({ kind: 'stop', run, why: 'its client asked' });
      }
      const streams = [{ key: k.control, id: controlFrom }, ...(started ? [{ key: k.results(run), id: resultsFrom }] : [])];
      let res: { name: string; messages: { id: string; message: Record<string, string> }[] }[] | null;
      try {
        await watching();
        res = await redis.xRead(streams, { BLOCK: 250, COUNT: 1000 }) as unknown as typeof res;
      } catch {
        // Redis away for a moment: the workers keep their results until it is back (up to the straggler wait).
        await new Promise((r) => setTimeout(r, 500));
        res = null;
      }
      let readResults = false;
      for (const s of res ?? []) {
        for (const e of s.messages) {
          if (s.name === k.control) {
            controlFrom = e.id;
            const c = opened<Control>(key, e.message, 'control');
            if (c) onControl(c);
          } else {
            resultsFrom = e.id;
            readResults = true;
            const m = opened<ResultMessage>(key, e.message, 'result');
            if (m) onResultMessage(m);
          }
        }
      }
      // What has been read is not kept in Redis: a long run's results do not pile up there.
      if (readResults) await redis.xTrim(k.results(run), 'MINID', resultsFrom).catch(() => {});
      if (!started && performance.now() > waitUntil) throw new CL_ERR_LOAD_COORDINATOR(where, `it did not take the run within ${ANSWER_MS / 1000} s`);
      if (finished()) break;
      const s = started as Extract<Control, { kind: 'run' }> | null;
      if (s && clock() > s.t0 + Math.min(s.plan.durationSeconds * 1000, stopAtMs) + STRAGGLER_MS) break;
    }
    over = true;
    await ask({ kind: 'finished', run }).catch(() => {});
    await redis.del([k.results(run), k.watching(run)]).catch(() => {});

    const endMs = Math.min(wire.durationSeconds * 1000, stopAtMs);
    const planned = plannedCounts(wire, owners, stopAtMs);
    const seconds = endMs / 1000;
    const per = (n: number): number => (seconds > 0 ? n / seconds : 0);
    const workers: WorkerReport[] = [...participants()].sort().map((id) => {
      const p = [...(planned.byWorker.get(id)?.values() ?? [])].reduce((a, b) => a + b, 0);
      const t = totals.get(id) ?? { sent: 0, failed: 0 };
      return { id, planned: p, sent: t.sent, failed: t.failed, plannedRate: per(p), achievedRate: per(t.sent), outcome: gone.get(id) ?? (done.has(id) ? 'ran' : 'silent') };
    });
    const nobody = [...(planned.byWorker.get(NOBODY)?.values() ?? [])].reduce((a, b) => a + b, 0);
    if (nobody > 0) workers.push({ id: NOBODY, planned: nobody, sent: 0, failed: 0, plannedRate: per(nobody), achievedRate: 0, outcome: 'silent' });
    const sent = workers.reduce((n, w) => n + w.sent, 0);
    const failed = workers.reduce((n, w) => n + w.failed, 0);
    return {
      sent, failed, statuses, failures, byEndpoint,
      latency: sum.latency.summary(failed), serviceTime: sum.service.summary(failed), sendLag: sum.lag.summary(0),
      histograms: { latency: sum.latency.encoded(), serviceTime: sum.service.encoded(), sendLag: sum.lag.encoded() },
      distributed: {
        coordinator: join.coordinator, run, planned: planned.total, plannedRate: per(planned.total), achievedRate: per(sent), seconds,
        workers, events, shares, gaps: coverageGaps(planned, sentBy),
      },
    };
  } finally {
    // Given up (an error, an interrupt, no answer in time): the load must not go on without us.
    if (!over && ask && run) await ask({ kind: 'stop', run, why: 'its client stopped' }).catch(() => {});
    await redis.quit().catch(() => redis.destroy());
  }
}

function addAll(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}
