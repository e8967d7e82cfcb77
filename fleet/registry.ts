// The fleet's instances: each says once a second, in Postgres, that it is alive and what it runs and
// routes. An instance unseen for the grace is gone: listed as such, and no rollout waits for it.
// Postgres's clock decides "unseen", so instances' clocks need not agree.
import type { Pool } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';

/** What an instance reports about itself (the controller reads the followers' reports). */
export interface InstanceState {
  /** The release each colour runs here, or null when it is stopped. */
  colours: Record<'blue' | 'green', string | null>;
  /** The routing it applies now. */
  routing: { stable: 'blue' | 'green'; candidate: 'blue' | 'green' | null; candidateWeight: number; rolloutId: string | null };
  /** The deployment it follows, and how far: its candidate ready here, the revision whose weights it applies. */
  following: { id: string; ready: boolean; failed: string | null; revision: number } | null;
  /** Whether it is the controller (holds the lease) as it believes. */
  controller: boolean;
  /** Why it routes to the stable colour only, when something it depends on is gone (Redis, Postgres). */
  degraded: string | null;
}

export interface FleetInstance {
  id: string;
  version: string;
  address: string | null;
  startedAt: string;
  lastSeenMsAgo: number;
  gone: boolean;
  state: Partial<InstanceState>;
}

export class InstanceRegistry {
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  private closed = false;
  /** The heartbeat in flight: a clean stop waits for it, so the row it writes is not left behind. */
  private beating: Promise<void> = Promise.resolve();

  constructor(private readonly o: {
    pool: Pool;
    id: string;
    version: string;
    address: string | null;
    graceMs: number;
    log: Logger;
    state: () => InstanceState;
  }) {}

  /** Heartbeats every second from now on (the first at once). */
  start(): void {
    const beat = (): void => {
      void this.beat().finally(() => {
        if (this.timer !== null) this.timer = setTimeout(beat, 1_000);
      });
    };
    this.timer = setTimeout(beat, 0);
  }

  /** Says now what it runs (a follower that just became ready does not wait for the next second). */
  beat(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.beating = this.write();
    return this.beating;
  }

  private async write(): Promise<void> {
    const { pool, id, version, address, log } = this.o;
    try {
      await pool.query(
        `INSERT INTO fleet_instances (id, version, address, state) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, address = EXCLUDED.address, state = EXCLUDED.state, last_seen = now()`,
        [id, version, address, JSON.stringify(this.o.state())]);
      if (this.failing) log.info('fleet heartbeat written again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) log.warn({ err: (err as Error).message }, 'could not write the fleet heartbeat; other instances will count this one gone after the grace');
      this.failing = true;
    }
  }

  /** Every instance known, newest first; `gone` past the grace. Instances gone for an hour are forgotten. */
  async instances(): Promise<FleetInstance[]> {
    const { rows } = await this.o.pool.query<{ id: string; version: string; address: string | null; started_at: Date; ms_ago: number; state: Partial<InstanceState> }>(
      `SELECT id, version, address, started_at, (extract(epoch FROM now() - last_seen) * 1000)::int AS ms_ago, state
       FROM fleet_instances WHERE last_seen > now() - interval '1 hour' ORDER BY started_at DESC`);
    return rows.map((r) => ({
      id: r.id, version: r.version, address: r.address, startedAt: r.started_at.toISOString(),
      lastSeenMsAgo: r.ms_ago, gone: r.ms_ago > this.o.graceMs, state: r.state,
    }));
  }

  /** The live instances only. */
  async live(): Promise<FleetInstance[]> {
    return (await this.instances()).filter((i) => !i.gone);
  }

  /** Stops the heartbeat and leaves the fleet (a clean stop: nobody waits the grace for it). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.beating;
    await this.o.pool.query('DELETE FROM fleet_instances WHERE id = $1', [this.o.id]).catch(() => {});
  }
}
