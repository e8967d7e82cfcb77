// The controller's word to every instance that a deployment takes no more traffic: Redis pub/sub,
// so a rollback reaches the fleet in milliseconds, not at the next read of the row (500 ms). Lost
// messages cost only that speed: the row says the same. Signed (fleet/signing.ts), like commands:
// anything with the Redis URL could publish.
import type { Logger } from '../lib/logger.js';
import { createRedisClient, destroyQuietly } from '../lib/redis.js';
import { mac, verify } from './signing.js';

export const ROUTING_CHANNEL = 'changelens:fleet:routing';

const sign = (key: Buffer, text: string): string => mac(key, `stable\n${text}`);

export class StableSignals {
  private readonly pub: ReturnType<typeof createRedisClient>;
  private readonly sub: ReturnType<typeof createRedisClient>;

  constructor(private readonly o: { redisUrl: string; key: Buffer; log: Logger; onStable: (deploymentId: string, sentAtMs: number) => void }) {
    this.pub = createRedisClient(o.redisUrl, { name: 'changelens-proxy-signals', log: o.log });
    this.sub = createRedisClient(o.redisUrl, { name: 'changelens-proxy-signals-sub', log: o.log });
    this.pub.connect().catch(() => {});
    // Subscribed again by the client itself after a reconnect.
    this.sub.connect().then(() => this.sub.subscribe(ROUTING_CHANNEL, (message) => this.receive(message))).catch((err: Error) => {
      o.log.warn({ err: err.message }, 'cannot subscribe to the controller\'s rollback signal; rollbacks reach this instance at its next read of the row (500 ms)');
    });
  }

  /** Every instance: deployment `id` to the stable colour now. */
  stable(deploymentId: string): void {
    const text = JSON.stringify({ id: deploymentId, at: Date.now() });
    if (!this.pub.isOpen) return;
    this.pub.publish(ROUTING_CHANNEL, JSON.stringify({ text, sig: sign(this.o.key, text) })).catch(() => {});
  }

  private receive(message: string): void {
    try {
      const { text, sig } = JSON.parse(message) as { text: string; sig: string };
      if (!verify(this.o.key, `stable\n${text}`, sig)) return;
      const { id, at } = JSON.parse(text) as { id: string; at: number };
      if (typeof id === 'string') this.o.onStable(id, Number(at));
    } catch {
      // Not ours: ignored.
    }
  }

  close(): void {
    destroyQuietly(this.pub);
    destroyQuietly(this.sub);
  }
}
