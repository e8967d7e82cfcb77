// What each regression does to a request of its colour. Only the business routes go through here;
// health, metrics and regression control stay unaffected so the colour can still be observed.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { CL_ERR_DOWNSTREAM_TIMEOUT, CL_ERR_INJECTED_FAILURE } from '../../lib/errors.js';
import type { Color } from '../../lib/config.js';
import type { RegressionState } from './regression-state.js';

/** Loop iterations of one cpu work unit: ~0.1 ms on the 2-core reference machine. */
const ITERATIONS_PER_UNIT = 15_000;
/** The lock is held across yields of this many units, so other requests queue behind it. */
const UNITS_PER_SLICE = 10;

export class RegressionEffects {
  /** The shared lock of the cpu regression: a promise chain, one holder at a time. */
  private lockTail: Promise<void> = Promise.resolve();

  constructor(
    private readonly color: Color,
    private readonly state: RegressionState,
    private readonly downstreamTimeoutMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** Before a business route: the errors regression fails some requests, the cpu one burns CPU under the lock. */
  async beforeRequest(): Promise<void> {
    const errors = this.state.get('errors');
    if (errors && this.random() < errors.intensity) throw new CL_ERR_INJECTED_FAILURE(this.color);
    const cpu = this.state.get('cpu');
    if (cpu) await this.burnCpu(cpu.intensity);
  }

  /** The db regression's extra cost units for a query of this colour, 0 when off. */
  dbCost(): number {
    return this.state.get('db')?.intensity ?? 0;
  }

  /** A call to a downstream dependency: instant normally; slower, and sometimes hanging until it times out, under the dependency regression. */
  async callDownstream(): Promise<void> {
    const dependency = this.state.get('dependency');
    if (!dependency) return;
    if (this.random() < (dependency.timeoutRate ?? 0)) {
      await sleep(this.downstreamTimeoutMs);
      throw new CL_ERR_DOWNSTREAM_TIMEOUT(this.downstreamTimeoutMs);
    }
    await sleep(dependency.intensity);
  }

  private async burnCpu(units: number): Promise<void> {
    const previous = this.lockTail;
    let release!: () => void;
    this.lockTail = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      for (let done = 0; done < units; done += UNITS_PER_SLICE) {
        spin(Math.min(UNITS_PER_SLICE, units - done) * ITERATIONS_PER_UNIT);
        // Keep the event loop turning (health checks answer) while still holding the lock.
        await yieldToEventLoop();
      }
    } finally {
      release();
    }
  }
}

let sink = 0;
function spin(iterations: number): void {
  let x = sink;
  for (let i = 0; i < iterations; i++) {
    x = (x * 31 + i) | 0;
    x ^= x >>> 7;
  }
  sink = x; // keeps the loop from being optimised away
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
