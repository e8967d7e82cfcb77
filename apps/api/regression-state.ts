// The regressions switched on in one colour. A release's env gives the ones it carries from birth;
// run-time changes (POST/DELETE /api/regression, with the operator's control credential) are kept in Redis per colour and per start of
// that colour (its release id) and announced on a channel, so every instance of the colour (pm2
// cluster mode) applies the same set, an instance restarted by pm2 comes back with it, and the
// next release on the colour starts clean. The other colour's state is never touched.
import type { Color } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import { isRegressionType, withDefaults, type Regression, type RegressionType } from '../../lib/contracts/regressions.js';

export interface ActiveRegression extends Regression {
  source: 'release' | 'runtime';
}

const OFF = 'off';
const KEY_TTL_SECONDS = 7 * 24 * 3600;

export class RegressionState {
  private active = new Map<RegressionType, ActiveRegression>();
  private readonly key: string;
  /** Run-time changes read and followed (start() done): until then only the release's own apply. */
  following = false;

  constructor(
    private readonly color: Color,
    releaseId: string,
    private readonly redis: RedisClient,
    private readonly baseline: readonly Regression[],
    private readonly log: Logger,
  ) {
    this.key = `changelens:regressions:${color}:${releaseId}`;
    this.apply({});
  }

  /** Loads the colour's run-time changes and follows them; `subscriber` is a dedicated connection. */
  async start(subscriber: RedisClient): Promise<void> {
    await subscriber.subscribe(this.key, () => {
      this.reload().catch((err: Error) => this.log.warn({ err: err.message }, 'reloading regressions failed'));
    });
    await this.reload();
    this.following = true;
    // After Redis was away, an announcement may have been missed (or the change lost with Redis's
    // last second): read the set again once the subscription is back, until it can be read.
    subscriber.on('ready', () => void this.reloadUntilRead());
  }

  private async reloadUntilRead(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.reload();
      } catch (err) {
        if (attempt === 1) this.log.warn({ err: (err as Error).message }, 'reloading regressions after Redis came back failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 2_000)));
      }
    }
  }

  get(type: RegressionType): ActiveRegression | undefined {
    return this.active.get(type);
  }

  list(): ActiveRegression[] {
    return [...this.active.values()];
  }

  async set(regression: Regression): Promise<ActiveRegression[]> {
    await this.redis.hSet(this.key, regression.type, JSON.stringify(withDefaults(regression)));
    return this.announce();
  }

  async remove(type: RegressionType): Promise<ActiveRegression[]> {
    await this.redis.hSet(this.key, type, OFF);
    return this.announce();
  }

  private async announce(): Promise<ActiveRegression[]> {
    // Old releases' keys fade away on their own.
    await this.redis.expire(this.key, KEY_TTL_SECONDS);
    await this.redis.publish(this.key, 'changed');
    await this.reload();
    return this.list();
  }

  private async reload(): Promise<void> {
    this.apply(await this.redis.hGetAll(this.key));
  }

  private apply(overrides: Record<string, string>): void {
    const next = new Map<RegressionType, ActiveRegression>(this.baseline.map((r) => [r.type, { ...withDefaults(r), source: 'release' }]));
    for (const [type, value] of Object.entries(overrides)) {
      if (!isRegressionType(type)) continue;
      if (value === OFF) next.delete(type);
      else next.set(type, { ...(JSON.parse(value) as Regression), type, source: 'runtime' });
    }
    const before = JSON.stringify([...this.active.values()]);
    this.active = next;
    if (JSON.stringify([...next.values()]) !== before) this.log.info({ regressions: this.list() }, `regressions on ${this.color}: ${this.list().map((r) => `${r.type}:${r.intensity}`).join(', ') || 'none'}`);
  }
}
