// A clock the test moves by hand (rollout/ports.ts's Clock): timers fire in time order as it
// advances, and between two of them everything the last one started (promises on in-memory
// stores, fake supervisors) runs to where it waits again.
import type { Clock } from '../../rollout/ports.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Lets pending promise chains run: a macrotask turn drains every microtask queued before it. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class ManualClock implements Clock {
  private wall: number;
  private mono = 0;
  private timers: Timer[] = [];
  private seq = 0;

  constructor(startMs = Date.UTC(2026, 10, 30, 12, 0, 0)) {
    this.wall = startMs;
  }

  now(): number {
    return this.wall;
  }

  monotonic(): number {
    return this.mono;
  }

  after(ms: number, fn: () => void): { cancel(): void } {
    const timer: Timer = { at: this.wall + Math.max(0, ms), seq: ++this.seq, fn };
    this.timers.push(timer);
    return { cancel: () => { this.timers = this.timers.filter((t) => t !== timer); } };
  }

  /** Moves time forward by ms, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.wall + ms;
    await settle();
    for (;;) {
      const next = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.move(next.at);
      this.timers = this.timers.filter((t) => t !== next);
      next.fn();
      await settle();
    }
    this.move(target);
    await settle();
  }

  /** Advances in steps of `stepMs` until `done()` holds; fails after `maxMs` of clock time. */
  async until(what: string, done: () => boolean, maxMs = 600_000, stepMs = 100): Promise<void> {
    for (let waited = 0; !done(); waited += stepMs) {
      if (waited >= maxMs) throw new Error(`${what}: not within ${maxMs} ms of clock time`);
      await this.advance(stepMs);
    }
  }

  private move(to: number): void {
    this.mono += to - this.wall;
    this.wall = to;
  }
}
