// A small open-model load for end-to-end tests and bench:rollback: requests start at a constant rate whatever the
// answers do (a slow colour cannot slow the arrivals), and each answer is counted by the colour
// that served it (x-changelens-color) and by when it started. Not a benchmark: bench/ has that.
type Color = 'blue' | 'green';

export interface Sample {
  startedAt: number;
  endedAt: number;
  color: Color | null;
  status: number;
  /** Why no answer came (status 0): the connection error's code, e.g. ECONNREFUSED, ECONNRESET. */
  error?: string;
}

export interface Load {
  samples: Sample[];
  /** Samples served by a colour in [from, to) by start time. */
  served(color: Color, from?: number, to?: number): Sample[];
  stop(): Promise<void>;
}

export function startLoad(url: string, ratePerSecond: number, init: RequestInit = {}): Load {
  const samples: Sample[] = [];
  const inFlight = new Set<Promise<void>>();
  const intervalMs = 1000 / ratePerSecond;
  const t0 = performance.now();
  let sent = 0;
  let stopped = false;
  const fire = (): void => {
    const startedAt = Date.now();
    const p = fetch(url, { ...init, signal: AbortSignal.timeout(10_000) }).then(
      async (res) => {
        await res.arrayBuffer();
        samples.push({ startedAt, endedAt: Date.now(), color: res.headers.get('x-changelens-color') as Color | null, status: res.status });
      },
      (err: Error & { cause?: { code?: string } }) => { samples.push({ startedAt, endedAt: Date.now(), color: null, status: 0, error: err.cause?.code ?? err.name }); },
    ).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  // A coarse timer catches up in bursts: the arrival schedule, not the timer, sets the count.
  const timer = setInterval(() => {
    if (stopped) return;
    const due = Math.floor((performance.now() - t0) / intervalMs);
    while (sent < due) { sent++; fire(); }
  }, 5);
  return {
    samples,
    served: (color, from = 0, to = Infinity) => samples.filter((s) => s.color === color && s.startedAt >= from && s.startedAt < to),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}

