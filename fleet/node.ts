// This appliance as one instance of a fleet: its heartbeat (registry.ts), the controller lease
// (lease.ts), its share of the fleet's measurements (slice-exchange.ts), the operators' commands
// (commands.ts) and the rollback signal (signals.ts), put together for the proxy. It implements what
// the rollout needs of the other instances (rollout/ports.ts FleetLink).
import type { Pool } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';
import type { SlicedWindow } from '../monitoring/index.js';
import { FleetCommands, type CommandHandler } from './commands.js';
import { ControllerLease, type LeaseHeld } from './lease.js';
import { InstanceRegistry, type FleetInstance, type InstanceState } from './registry.js';
import { SliceExchange, PUBLISH_EVERY_MS } from './slice-exchange.js';
import { StableSignals } from './signals.js';
import { fleetKey } from './signing.js';

/** What the fleet waits on of a deployment: its id and revision (rollout's Deployment has both). */
interface FollowedDeployment {
  id: string;
  status: { revision: number };
}

export interface FleetNodeOptions {
  pool: Pool;
  redisUrl: string;
  id: string;
  version: string;
  address: string | null;
  adminToken: string;
  leaseMs: number;
  graceMs: number;
  /** Where the fleet's slices are merged. */
  fleetWindow: SlicedWindow;
  log: Logger;
  /** This instance's own state, for its heartbeat. */
  state: () => Omit<InstanceState, 'controller'>;
  /** It took the lease (drive) or lost it (follow). */
  onLease: (held: LeaseHeld | null) => void;
  /** The controller's word (sent at `sentAtMs`, its clock): a deployment to stable now. */
  onStable: (deploymentId: string, sentAtMs: number) => void;
}

/** How long past a window's end the controller judges it: a publication, the read, a margin. */
export const FLEET_JUDGE_DELAY_MS = PUBLISH_EVERY_MS + 150;

export class FleetNode {
  readonly registry: InstanceRegistry;
  readonly lease: ControllerLease;
  readonly slices: SliceExchange;
  readonly commands: FleetCommands;
  private readonly signals: StableSignals;
  private redisLost = false;

  constructor(private readonly o: FleetNodeOptions) {
    const key = fleetKey(o.adminToken);
    this.registry = new InstanceRegistry({
      pool: o.pool, id: o.id, version: o.version, address: o.address, graceMs: o.graceMs, log: o.log,
      state: () => ({ ...o.state(), controller: this.lease.held() !== null }),
    });
    this.lease = new ControllerLease({ pool: o.pool, id: o.id, leaseMs: o.leaseMs, log: o.log, onChange: (held) => o.onLease(held) });
    this.slices = new SliceExchange({ redisUrl: o.redisUrl, instance: o.id, fleetWindow: o.fleetWindow, log: o.log, onLost: (lost) => { this.redisLost = lost; } });
    this.commands = new FleetCommands({ redisUrl: o.redisUrl, key, instance: o.id, log: o.log });
    this.signals = new StableSignals({ redisUrl: o.redisUrl, key, log: o.log, onStable: (id, at) => o.onStable(id, at) });
  }

  start(): void {
    this.registry.start();
    this.lease.start();
  }

  /** Why candidate traffic served here would go unjudged now, or null. */
  unjudged(): string | null {
    if (this.redisLost || this.slices.failing) return 'Redis unreachable: this instance\'s measurements do not reach the fleet\'s verdict';
    if (!this.controllerAlive()) return 'no controller renews the lease (another instance takes it over)';
    return null;
  }

  /** While this instance holds the lease: runs the commands other instances send. */
  serveCommands(handler: CommandHandler | null): void {
    if (handler) this.commands.serve(handler);
    else void this.commands.stopServing();
  }

  /** Whether a controller renews its lease (fleet/lease.ts holderAlive). */
  controllerAlive(): boolean {
    return this.lease.holderAlive();
  }

  /** Every live instance but this one runs `d`'s candidate ready; throws naming one that could not, or those still not ready at the deadline. */
  async everyoneReady(d: FollowedDeployment, timeoutMs: number, live: () => boolean = () => true): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!live()) return;
      const others = (await this.registry.live()).filter((i) => i.id !== this.o.id);
      const failed = others.find((i) => i.state.following?.id === d.id && i.state.following.failed);
      if (failed) throw new Error(`instance ${failed.id} could not start it: ${failed.state.following!.failed}`);
      const waiting = others.filter((i) => !(i.state.following?.id === d.id && i.state.following.ready));
      if (waiting.length === 0) return;
      if (Date.now() > deadline) throw new Error(`instance${waiting.length > 1 ? 's' : ''} ${waiting.map((i) => i.id).join(', ')} not ready within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Every live instance but this one applies `d`'s weights at its current revision. */
  async servingEverywhere(d: FollowedDeployment): Promise<boolean> {
    let others: FleetInstance[];
    try {
      others = (await this.registry.live()).filter((i) => i.id !== this.o.id);
    } catch (err) {
      // Not known: the step waits (judging goes on), it never moves on a guess.
      this.o.log.warn({ err: (err as Error).message }, 'cannot read the fleet\'s instances; the step waits');
      return false;
    }
    return others.every((i) => i.state.following?.id === d.id && i.state.following.ready && i.state.following.revision >= d.status.revision);
  }

  stableNow(d: FollowedDeployment): void {
    this.signals.stable(d.id);
  }

  instances(): Promise<FleetInstance[]> {
    return this.registry.instances();
  }

  async close(): Promise<void> {
    await this.lease.close();
    await this.commands.close();
    this.signals.close();
    await this.slices.close();
    await this.registry.close();
  }
}
