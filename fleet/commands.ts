// An operator's action reaches the controller through any instance: the instance that received it
// adds a command to a Redis stream, the controller runs it and answers on a list the sender waits
// on. Instances never need to reach each other (on Cloud Run or CloudBase Run they cannot): they
// meet in Redis. A command is signed with a key derived from the admin token every instance of the
// fleet shares, because anything with the Redis URL (a release, in external mode) could add one; a
// command older than its deadline is not run, so nothing the operator gave up on happens later.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ChangeLensError, CL_ERR_NO_CONTROLLER } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import { createRedisClient } from '../lib/redis.js';
import { tailStream, type StreamTail } from '../lib/stream-tail.js';

export const COMMAND_STREAM = 'changelens:fleet:commands';
const replyKey = (id: string): string => `changelens:fleet:reply:${id}`;
/** How long a sender waits for the controller, and how old a command the controller still runs. */
export const COMMAND_DEADLINE_MS = 10_000;

export type CommandHandler = (action: string, args: unknown) => Promise<unknown>;

type Reply = { ok: true; value: unknown } | { ok: false; error: { code: string; statusCode: number; message: string; hint: string } };

const sign = (key: Buffer, id: string, action: string, args: string, sentAt: string): string =>
  createHmac('sha256', key).update(`${id}\n${action}\n${args}\n${sentAt}`).digest('base64url');

/** The key commands are signed with: derived from the admin token, never the token itself. */
export function commandKey(adminToken: string): Buffer {
  return createHmac('sha256', adminToken).update('changelens fleet commands').digest();
}

/** Sends commands (any instance) and runs them (the controller, while `serving`). */
export class FleetCommands {
  private readonly sender: ReturnType<typeof createRedisClient>;
  private tail: StreamTail | null = null;

  constructor(private readonly o: { redisUrl: string; key: Buffer; instance: string; log: Logger }) {
    this.sender = createRedisClient(o.redisUrl, { name: 'changelens-proxy-commands', log: o.log });
    this.sender.connect().catch(() => {});
  }

  /** Runs `action` on the controller, wherever it is; its error is thrown here as it was there. */
  async send(action: string, args: unknown): Promise<unknown> {
    const id = newId('cmd');
    const body = JSON.stringify(args ?? null);
    const sentAt = String(Date.now());
    if (!this.sender.isOpen) throw new CL_ERR_NO_CONTROLLER('Redis, where the controller takes commands, does not answer this instance');
    // A blocking pop needs a connection of its own: the sender's stays free for others.
    const waiter = this.sender.duplicate();
    waiter.on('error', () => {});
    try {
      await waiter.connect();
      await this.sender.xAdd(COMMAND_STREAM, '*', { id, action, args: body, sentAt, from: this.o.instance, sig: sign(this.o.key, id, action, body, sentAt) },
        { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 1_000 } });
      const popped = await waiter.blPop(replyKey(id), COMMAND_DEADLINE_MS / 1000);
      if (!popped) throw new CL_ERR_NO_CONTROLLER(`nothing answered "${action}" within ${COMMAND_DEADLINE_MS / 1000} s`);
      const reply = JSON.parse(popped.element) as Reply;
      if (reply.ok) return reply.value;
      throw new ChangeLensError(reply.error.code, reply.error.statusCode, reply.error.message, reply.error.hint);
    } finally {
      waiter.destroy();
    }
  }

  /** From now on (until `stopServing`), runs the commands that arrive, each answered once. */
  serve(handler: CommandHandler): void {
    if (this.tail) return;
    const { log, key } = this.o;
    const replier = this.sender;
    this.tail = tailStream({
      redisUrl: this.o.redisUrl, key: COMMAND_STREAM, name: 'changelens-proxy-controller-commands', log, what: 'operators\' commands',
      onEntry: (_entryId, f) => {
        const { id, action, args, sentAt, sig, from } = f;
        if (!id || !action || args === undefined || !sentAt || !sig) return;
        const expected = Buffer.from(sign(key, id, action, args, sentAt));
        const given = Buffer.from(sig);
        if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
          log.warn({ command: id, action, from }, 'refused a fleet command with a wrong signature (not from an instance holding the admin token)');
          return;
        }
        if (!/^cmd-[a-z0-9]+-[0-9a-f]{6}$/.test(id) || Date.now() - Number(sentAt) > COMMAND_DEADLINE_MS) return;
        void (async () => {
          let reply: Reply;
          try {
            reply = { ok: true, value: await handler(action, JSON.parse(args)) };
          } catch (err) {
            const e = err instanceof ChangeLensError ? err : new ChangeLensError('CL_ERR_INTERNAL', 500, (err as Error).message, 'see the controller instance\'s log');
            reply = { ok: false, error: { code: e.code, statusCode: e.statusCode, message: e.message, hint: e.hint } };
          }
          log.info({ command: id, action, from, ok: reply.ok }, 'ran a command from another instance');
          await replier.multi().lPush(replyKey(id), JSON.stringify(reply)).expire(replyKey(id), 60).exec()
            .catch((err: Error) => log.warn({ err: err.message, command: id }, 'could not answer a fleet command; its sender reports no answer'));
        })();
      },
    });
  }

  async stopServing(): Promise<void> {
    const tail = this.tail;
    this.tail = null;
    await tail?.close();
  }

  async close(): Promise<void> {
    await this.stopServing();
    this.sender.destroy();
  }
}
