// Early verdicts that keep a stated false-alarm rate however often they look: two Wald sequential
// probability ratio tests (SPRT) on the candidate's requests, fed once a second with counts.
//
// - Latency: is a candidate request slower than the stable colour's P99 (measured over the stable
//   colour's last 30 s)? Same code would be slower 1 % of the time; H0 takes 2 % to absorb the noise
//   of a P99 estimated from a few thousand requests, H1 is 8 %.
// - Errors: is a candidate request a 5xx? H0 is the stable colour's own rate (at least 0.5 %),
//   H1 is 5 points more.
//
// Each test adds the log-likelihood ratio of every request and stops at the first boundary it
// crosses: above A = ln((1-β)/α) the candidate fails; below B = ln(β/(1-α)) it is accepted and the
// test stops (the window rules go on as a backstop). Wald's bound holds for any number of looks:
// P(false failure) ≤ α/(1-β) per test, so with α = 0.002, β = 0.1 and two tests a deployment of
// identical code is failed with probability ≤ 2 × 0.002 / 0.9 ≈ 0.44 %, whether it runs 30 s or an
// hour. Nothing fails before MIN_SAMPLES candidate requests. Pure: no clock, no I/O.

export interface SequentialOptions {
  /** Type I error per test (a good release failed). */
  alpha: number;
  /** Type II error per test (a bad release accepted by this test; the window rules still judge it). */
  beta: number;
  /** Share of candidate requests slower than the stable P99 under H0 and H1. */
  slowP0: number;
  slowP1: number;
  /** Error-rate floor under H0, and how much more H1 is. */
  errorFloor: number;
  errorDelta: number;
  /** No failure before this many candidate requests. */
  minSamples: number;
}

export const SEQUENTIAL_DEFAULTS: SequentialOptions = { alpha: 0.002, beta: 0.1, slowP0: 0.02, slowP1: 0.08, errorFloor: 0.005, errorDelta: 0.05, minSamples: 20 };


export interface SliceCounts {
  /** Candidate requests that ended in this slice, how many were slower than the threshold, how many 5xx. */
  count: number;
  slow: number;
  errors: number;
  /** The stable colour's error rate (its recent history), for the errors test's H0; null: unknown. */
  stableErrorRate: number | null;
  /** The stable P99 the `slow` count used, ms; null: no latency evidence this slice. */
  thresholdMs: number | null;
}

export type TestName = 'sequential_latency' | 'sequential_errors' | 'sequential_job_errors';

export interface SequentialVerdict {
  verdict: 'fail' | 'continue' | 'accepted';
  /** The test that failed, with its evidence; set when verdict is 'fail'. */
  test?: TestName;
  observed?: number;
  /** 95 % Wilson interval of the observed proportion. */
  interval?: [number, number];
  threshold?: number;
  samples?: number;
  message?: string;
}

interface TestState {
  llr: number;
  n: number;
  hits: number;
  done: 'accepted' | 'failed' | null;
  /** H0 and H1 of the errors test, fixed at its first evidence so the bound holds. */
  p0: number | null;
  p1: number | null;
}

const fresh = (): TestState => ({ llr: 0, n: 0, hits: 0, done: null, p0: null, p1: null });

export class SequentialJudge {
  private readonly upper: number;
  private readonly lower: number;
  private readonly latency = fresh();
  private readonly errors = fresh();

  /** `jobs`: the errors test is of the candidate worker's job attempts, not of its requests. */
  constructor(readonly options: SequentialOptions = SEQUENTIAL_DEFAULTS, private readonly of: 'requests' | 'jobs' = 'requests') {
    this.upper = Math.log((1 - options.beta) / options.alpha);
    this.lower = Math.log(options.beta / (1 - options.alpha));
  }

  /** One slice of evidence; 'fail' as soon as either test crosses its upper boundary. */
  feed(slice: SliceCounts): SequentialVerdict {
    const o = this.options;
    if (slice.count <= 0) return this.state();
    if (slice.thresholdMs !== null) {
      const failed = this.step(this.latency, o.slowP0, o.slowP1, slice.slow, slice.count);
      if (failed) return this.failure('sequential_latency', o.slowP0, `${fmt(this.latency.hits)} of ${this.latency.n} candidate requests slower than ${slice.thresholdMs.toFixed(1)}ms (the stable P99, plus the latency floor if set)`);
    }
    if (this.errors.p0 === null) {
      this.errors.p0 = Math.min(0.5, Math.max(o.errorFloor, slice.stableErrorRate ?? 0));
      this.errors.p1 = Math.min(0.99, this.errors.p0 + o.errorDelta);
    }
    if (this.step(this.errors, this.errors.p0, this.errors.p1!, slice.errors, slice.count)) {
      return this.of === 'jobs'
        ? this.failure('sequential_job_errors', this.errors.p0, `${fmt(this.errors.hits)} of ${this.errors.n} candidate job attempts failed`)
        : this.failure('sequential_errors', this.errors.p0, `${fmt(this.errors.hits)} of ${this.errors.n} candidate requests failed (5xx)`);
    }
    return this.state();
  }

  /** True when this slice made the test cross its upper boundary. */
  private step(t: TestState, p0: number, p1: number, hits: number, n: number): boolean {
    if (t.done !== null) return false;
    t.n += n;
    t.hits += hits;
    t.llr += hits * Math.log(p1 / p0) + (n - hits) * Math.log((1 - p1) / (1 - p0));
    if (t.llr >= this.upper && t.n >= this.options.minSamples) {
      t.done = 'failed';
      return true;
    }
    if (t.llr <= this.lower) t.done = 'accepted';
    return false;
  }

  private failure(test: TestName, threshold: number, what: string): SequentialVerdict {
    const t = test === 'sequential_latency' ? this.latency : this.errors;
    const observed = t.hits / t.n;
    const interval = wilson(t.hits, t.n);
    return {
      verdict: 'fail', test, observed, interval, threshold, samples: t.n,
      message: `${what}: ${pct(observed)} (95 % interval ${pct(interval[0])}-${pct(interval[1])}) against ${pct(threshold)} expected; the sequential test crossed its boundary (false-alarm bound ≤ ${pct(this.options.alpha / (1 - this.options.beta))})`,
    };
  }

  private state(): SequentialVerdict {
    return { verdict: this.latency.done === 'accepted' && this.errors.done === 'accepted' ? 'accepted' : 'continue' };
  }

  /** Where each test stands, for explanations. */
  describe(): string {
    const one = (name: string, t: TestState) => `${name} ${t.done ?? `llr ${t.llr.toFixed(2)} of ${this.upper.toFixed(2)}`} (${t.hits}/${t.n})`;
    return `${one('latency', this.latency)}; ${one('errors', this.errors)}`;
  }
}

/** The 95 % Wilson score interval of k successes in n. */
export function wilson(k: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.959964;
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

const pct = (x: number): string => `${(x * 100).toFixed(x < 0.01 ? 2 : 1)}%`;
const fmt = (x: number): string => String(x);
