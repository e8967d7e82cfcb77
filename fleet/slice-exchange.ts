// One verdict for the fleet: every proxy publishes what it measured, per colour and 1 s slice, to
// a Redis stream, and every proxy reads the stream back into one window (a `SlicedWindow`) holding
// the whole fleet's traffic. What is published is a delta (the requests since the last publication,
// as an encoded HdrHistogram, with errors and metric sums); adding deltas is exact, so the merged
// window's percentiles are those of one histogram of all the fleet's requests. Every proxy reads it,
// so a newly elected controller has the last two minutes at once, and every dashboard shows the fleet.
import type { Color } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { createRedisClient, destroyQuietly } from '../lib/redis.js';
import { tailStream, type StreamTail } from '../lib/stream-tail.js';
import { withTimeout } from '../lib/timeout.js';
import { decodeHistogram, encodeHistogram, newHistogram, recordLatency, type Histogram, type SlicedWindow } from '../monitoring/index.js';

export const SLICE_STREAM = 'changelens:fleet:slices';
/** How often a proxy publishes: the judge waits this much (plus the read) past a window's end. */
export const PUBLISH_EVERY_MS = 100;
/** What the stream keeps: two minutes of ten instances × two colours × ten publications a second, about. */
const STREAM_MAXLEN = 30_000;
/** How far ahead of this instance's clock a slice may be (instances' clocks differ a little). */
const MAX_SKEW_S = 5;
/** A publication with no answer by then is dropped (a half-open connection must not hold them all). */
const PUBLISH_TIMEOUT_MS = 2_000;
/** Deltas not published for this long (Redis away) are dropped: no window that old is judged. */
const KEEP_UNPUBLISHED_MS = 120_000;

interface Delta {
  color: Color;
  second: number;
  histogram: Histogram;
  errors: number;
  metrics: Map<string, { sum: number; count: number }> | null;
}

export interface SliceExchangeOptions {
  redisUrl: string;
  instance: string;
  /** Where the fleet's slices are merged (the judge's and the dashboard's window). */
  fleetWindow: SlicedWindow;
  log: Logger;
  /** Redis went away (true) or is back (false): the fleet's verdicts are blind meanwhile. */
  onLost?: (lost: boolean) => void;
}

export class SliceExchange {
  private readonly deltas = new Map<string, Delta>();
  private readonly free: Delta[] = [];
  /** Encoded deltas a failed publication kept, oldest first. */
  private unsent: Record<string, string>[] = [];
  private readonly publisher: ReturnType<typeof createRedisClient>;
  private readonly reader: StreamTail;
  private readonly timer: NodeJS.Timeout;
  private publishing = false;
  private failingNow = false;

  constructor(private readonly o: SliceExchangeOptions) {
    this.publisher = createRedisClient(o.redisUrl, { name: 'changelens-proxy-slices', log: o.log });
    this.publisher.connect().catch(() => {}); // reconnects by itself; a publication waits for it
    this.reader = tailStream({
      redisUrl: o.redisUrl, key: SLICE_STREAM, name: 'changelens-proxy-fleet-window', log: o.log, what: 'the fleet\'s slices',
      backMs: KEEP_UNPUBLISHED_MS,
      onEntry: (_id, fields) => this.merge(fields),
      ...(o.onLost ? { onLost: o.onLost } : {}),
    });
    this.timer = setInterval(() => void this.publish(), PUBLISH_EVERY_MS);
    this.timer.unref();
  }

  /** Whether the last publication failed: this instance's requests do not reach the fleet's verdict now. */
  get failing(): boolean {
    return this.failingNow;
  }

  /** One request this proxy served: into the delta of its colour and second. */
  record(color: Color, latencyMs: number, isError: boolean, atMs: number): void {
    const d = this.delta(color, atMs);
    recordLatency(d.histogram, latencyMs);
    if (isError) d.errors++;
  }

  recordMetric(color: Color, name: string, value: number, atMs: number): void {
    const d = this.delta(color, atMs);
    d.metrics ??= new Map();
    const m = d.metrics.get(name) ?? { sum: 0, count: 0 };
    m.sum += value;
    m.count++;
    d.metrics.set(name, m);
  }

  private delta(color: Color, atMs: number): Delta {
    const second = Math.floor(atMs / 1000);
    const key = `${color}:${second}`;
    let d = this.deltas.get(key);
    if (!d) {
      // A histogram is a few hundred kB of counters: reused, not made ten times a second.
      d = this.free.pop() ?? { color, second, histogram: newHistogram(), errors: 0, metrics: null };
      d.color = color;
      d.second = second;
      this.deltas.set(key, d);
    }
    return d;
  }

  /** Publishes every delta since the last time; what fails is kept (encoded) and sent with the next. */
  async publish(): Promise<void> {
    if (this.publishing || (this.deltas.size === 0 && this.unsent.length === 0)) return;
    this.publishing = true;
    for (const d of this.deltas.values()) {
      const fields: Record<string, string> = { i: this.o.instance, c: d.color, s: String(d.second), e: String(d.errors), h: encodeHistogram(d.histogram), x: String(d.histogram.maxValue) };
      if (d.metrics) fields.m = JSON.stringify(Object.fromEntries(d.metrics));
      this.unsent.push(fields);
      d.histogram.reset();
      d.errors = 0;
      d.metrics = null;
      this.free.push(d);
    }
    this.deltas.clear();
    const batch = this.unsent;
    this.unsent = [];
    if (!this.publisher.isReady) {
      // Never sent: kept for the next publication (bounded by age).
      this.keepUnsent(batch, 'not connected');
      this.publishing = false;
      return;
    }
    try {
      const multi = this.publisher.multi();
      for (const fields of batch) multi.xAdd(SLICE_STREAM, '*', fields, { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: STREAM_MAXLEN } });
      // A half-open connection must not hold every later publication: no answer in time is a failure.
      await withTimeout(multi.exec(), PUBLISH_TIMEOUT_MS, 'no answer from Redis');
      if (this.failingNow) this.o.log.info('publishing this instance\'s slices to the fleet again');
      this.failingNow = false;
    } catch (err) {
      // Sent, and maybe applied before the connection failed: dropped, never sent twice (missing samples, never wrong ones).
      if (!this.failingNow) this.o.log.warn({ err: (err as Error).message, deltas: batch.length }, 'publishing slices failed; dropped them (the fleet\'s verdicts miss them)');
      this.failingNow = true;
    } finally {
      this.publishing = false;
    }
  }

  private keepUnsent(batch: Record<string, string>[], why: string): void {
    if (!this.failingNow) this.o.log.warn({ why }, 'cannot publish this instance\'s slices; kept until Redis answers (the fleet\'s verdicts miss them meanwhile)');
    this.failingNow = true;
    const oldest = Math.floor((Date.now() - KEEP_UNPUBLISHED_MS) / 1000);
    this.unsent = [...batch.filter((f) => Number(f.s) >= oldest), ...this.unsent];
  }

  /** One published delta (any instance's, this one's too) into the fleet's window; a malformed one is skipped. */
  private merge(f: Record<string, string>): void {
    const second = Number(f.s);
    const errors = Number(f.e);
    if ((f.c !== 'blue' && f.c !== 'green') || !Number.isSafeInteger(second) || !Number.isSafeInteger(errors) || errors < 0 || typeof f.h !== 'string') return;
    // Seconds no window reads (older than the ring; ahead of this clock by more than a skew): a future one would hide the present.
    const now = Date.now() / 1000;
    if (second < now - KEEP_UNPUBLISHED_MS / 1000 || second > now + MAX_SKEW_S) return;
    try {
      const histogram = decodeHistogram(f.h, Number(f.x));
      const metrics = f.m ? parseMetrics(f.m) : undefined;
      this.o.fleetWindow.add(f.c, second * 1000, histogram, errors, metrics);
    } catch {
      // Not a histogram: skipped, as any malformed entry.
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.publish();
    destroyQuietly(this.publisher);
    await this.reader.close();
  }
}

function parseMetrics(text: string): Record<string, { sum: number; count: number }> | undefined {
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const out: Record<string, { sum: number; count: number }> = {};
  for (const [name, v] of Object.entries(parsed as Record<string, { sum?: unknown; count?: unknown }>)) {
    if (typeof v?.sum === 'number' && Number.isFinite(v.sum) && Number.isSafeInteger(v.count) && (v.count as number) > 0) out[name] = { sum: v.sum, count: v.count as number };
  }
  return out;
}
