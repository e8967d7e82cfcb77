// The controller lease: one instance of the fleet drives deployments. A row with a holder, an epoch
// and an expiry (migrations/0006_fleet.sql says why not an advisory lock). The holder renews it
// every second; anyone takes it once it has expired, and taking it increments the epoch. A holder
// that could not renew acts as deposed as soon as its own clock says the lease may have run out
// (with a margin for clock rate), before anyone else may take it; and every write of the rollout
// checks the epoch in the same transaction (rollout/store.ts), so a holder that was paused past its
// lease (a GC, a frozen VM) is refused even if it has not noticed.
import type { Pool } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';

export interface LeaseHeld {
  holder: string;
  epoch: number;
}

export interface LeaseOptions {
  pool: Pool;
  id: string;
  /** How long the lease lasts unrenewed. */
  leaseMs: number;
  log: Logger;
  /** Called with the lease when this instance takes it, with null when it loses or gives it up. */
  onChange: (held: LeaseHeld | null) => void;
  /** How often to renew or try to take it; default 1 s. */
  tickMs?: number;
}

/** The share of the lease after which an unrenewed holder stops acting: well before anyone else may take it. */
const SAFE_SHARE = 0.6;

export class ControllerLease {
  private heldNow: LeaseHeld | null = null;
  /** Local monotonic time of the last renewal that Postgres confirmed. */
  private confirmedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private closed = false;
  /** Who holds it, as last read (for status on any instance); `readAt` on the monotonic clock. */
  private seen: { holder: string; epoch: number; expiresInMs: number; readAt: number } | null = null;

  constructor(private readonly o: LeaseOptions) {}

  start(): void {
    const tick = (): void => {
      this.ticking = this.tick().finally(() => {
        if (!this.closed) this.timer = setTimeout(tick, this.o.tickMs ?? 1_000);
      });
    };
    tick();
  }

  /** The lease while this instance may act on it, else null. */
  held(): LeaseHeld | null {
    if (this.heldNow && performance.now() - this.confirmedAt > this.o.leaseMs * SAFE_SHARE) this.lose('its renewal went unconfirmed');
    return this.heldNow;
  }

  /** Who held the lease at the last read, and for how long more from now (negative: expired): status on every instance. */
  holder(): { holder: string; epoch: number; expiresInMs: number } | null {
    const seen = this.seen;
    return seen ? { holder: seen.holder, epoch: seen.epoch, expiresInMs: Math.round(seen.expiresInMs - (performance.now() - seen.readAt)) } : null;
  }

  /**
   * Whether the holder renewed lately, as far as this instance can tell: it renews every second, and
   * stops acting by itself at the same point (60 % of the lease unconfirmed) this says it stopped.
   */
  holderAlive(): boolean {
    if (this.held()) return true;
    const seen = this.holder();
    return seen !== null && seen.expiresInMs > this.o.leaseMs * (1 - SAFE_SHARE);
  }

  /** Gives the lease up (the proxy is stopping): another instance takes it at once, not after the expiry. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    const held = this.heldNow;
    this.lose('the instance is stopping');
    if (held) {
      await this.o.pool.query(`UPDATE fleet_leases SET expires_at = now() - interval '1 second' WHERE name = 'controller' AND holder = $1 AND epoch = $2`, [held.holder, held.epoch])
        .catch((err: Error) => this.o.log.warn({ err: err.message }, 'could not give up the controller lease; it expires by itself'));
    }
  }

  private async tick(): Promise<void> {
    const { pool, id, leaseMs, log } = this.o;
    // A renewal after a pause longer than the margin is a new take, never a continuation: lose first.
    this.held();
    const started = performance.now();
    try {
      // Renew when held (by this id and epoch), else take it if it is free or expired; one statement
      // either way, so two instances racing for a free lease cannot both win.
      const { rows } = await pool.query<{ holder: string; epoch: string; expires_in_ms: number }>(
        `INSERT INTO fleet_leases (name, holder, epoch, expires_at) VALUES ('controller', $1, 1, now() + $2 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE SET
           holder = EXCLUDED.holder,
           epoch = CASE WHEN fleet_leases.holder = EXCLUDED.holder AND fleet_leases.epoch = $3 AND fleet_leases.expires_at > now() THEN fleet_leases.epoch ELSE fleet_leases.epoch + 1 END,
           expires_at = EXCLUDED.expires_at
         WHERE (fleet_leases.holder = EXCLUDED.holder AND fleet_leases.epoch = $3 AND fleet_leases.expires_at > now()) OR fleet_leases.expires_at <= now()
         RETURNING holder, epoch, (extract(epoch FROM expires_at - now()) * 1000)::int AS expires_in_ms`,
        [id, leaseMs, this.heldNow?.epoch ?? -1]);
      const row = rows[0];
      if (row) {
        const epoch = Number(row.epoch);
        this.seen = { holder: id, epoch, expiresInMs: row.expires_in_ms, readAt: started };
        // Confirmed as of when the statement was sent: the lease runs from no later than that.
        this.confirmedAt = started;
        if (this.heldNow && this.heldNow.epoch !== epoch) this.lose(`epoch ${this.heldNow.epoch} ended; taken again as ${epoch}`);
        if (this.heldNow?.epoch !== epoch) {
          this.heldNow = { holder: id, epoch };
          log.info({ epoch }, 'took the controller lease: this instance drives deployments');
          this.o.onChange(this.heldNow);
        }
        return;
      }
      const { rows: current } = await pool.query<{ holder: string; epoch: string; expires_in_ms: number }>(
        `SELECT holder, epoch, (extract(epoch FROM expires_at - now()) * 1000)::int AS expires_in_ms FROM fleet_leases WHERE name = 'controller'`);
      const c = current[0];
      this.seen = c ? { holder: c.holder, epoch: Number(c.epoch), expiresInMs: c.expires_in_ms, readAt: started } : null;
      if (this.heldNow) this.lose(c ? `epoch ${c.epoch} is held by ${c.holder}` : 'the lease row is gone');
    } catch (err) {
      log.warn({ err: (err as Error).message, holding: this.heldNow !== null }, 'could not renew or read the controller lease');
      // held() deposes this instance once the margin has passed without a confirmed renewal.
      this.held();
    }
  }

  private lose(why: string): void {
    if (!this.heldNow) return;
    const { epoch } = this.heldNow;
    this.heldNow = null;
    this.o.log.warn({ epoch, why }, 'no longer the controller: following the deployment as any instance does');
    this.o.onChange(null);
  }
}
