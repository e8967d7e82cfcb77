// An operator's action reaches the controller through any instance: the instance that received it
// adds a command to a Redis stream, the controller runs it and answers on a list the sender waits
// on. Instances never need to reach each other (on Cloud Run or CloudBase Run they cannot): they
// meet in Redis. A command is signed with a key derived from the admin token every instance of the
// fleet shares, because anything with the Redis URL (a release, in external mode) could add one; a
// command older than its deadline is not run, so nothing the operator gave up on happens later.
import { ChangeLensError, CL_ERR_NO_CONTROLLER } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import { createRedisClient, destroyQuietly } from '../lib/redis.js';
import { tailStream, type StreamTail } from '../lib/stream-tail.js';
import { withTimeout } from '../lib/timeout.js';
import { mac, verify } from './signing.js';

export const COMMAND_STREAM = 'changelens:fleet:commands';
const replyKey = (id: string): string => `changelens:fleet:reply:${id}`;
/** How long a sender waits for the controller, and how old a command the controller still runs. */
export const COMMAND_DEADLINE_MS = 10_000;

export type CommandHandler = (action: string, args: unknown) => Promise<unknown>;

type Reply = { ok: true; value: unknown } | { ok: false; error: { code: string; statusCode: number; message: string; hint: string } };

const sign = (key: Buffer, id: string, action: string, args: string, sentAt: string): string => mac(key, `${id}\n${action}\n${args}\n${sentAt}`);


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
    const { key, redisUrl, instance } = this.o;
    if (!this.sender.isReady) throw new CL_ERR_NO_CONTROLLER('Redis, where the controller takes commands, does not answer this instance');
    // A blocking pop needs a connection of its own, made for this command and never retried.
    const waiter = createRedisClient(redisUrl, { name: 'changelens-proxy-command-reply', reconnect: false });
    try {
      await withTimeout(waiter.connect(), 2_000, 'connecting to Redis: no answer');
      await withTimeout(this.sender.xAdd(COMMAND_STREAM, '*', { id, action, args: body, sentAt, from: instance, sig: sign(key, id, action, body, sentAt) },
        { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 1_000 } }), 2_000, 'adding the command: no answer');
      const deadline = Date.now() + COMMAND_DEADLINE_MS;
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) throw new CL_ERR_NO_CONTROLLER(`nothing answered "${action}" within ${COMMAND_DEADLINE_MS / 1000} s`);
        const popped = await withTimeout(waiter.blPop(replyKey(id), Math.max(0.1, left / 1000)), left + 2_000, 'waiting for the answer: none');
        if (!popped) continue;
        // Only the controller's answer counts: anything else with the Redis URL could push one.
        let reply: string;
        try {
          const parsed = JSON.parse(popped.element) as { reply: unknown; sig: unknown };
          if (typeof parsed.reply !== 'string' || !verify(key, `reply\n${id}\n${parsed.reply}`, parsed.sig)) continue;
          reply = parsed.reply;
        } catch {
          continue;
        }
        const r = JSON.parse(reply) as Reply;
        if (r.ok) return r.value;
        throw new ChangeLensError(r.error.code, r.error.statusCode, r.error.message, r.error.hint);
      }
    } catch (err) {
      if (err instanceof ChangeLensError) throw err;
      throw new CL_ERR_NO_CONTROLLER(`Redis did not take "${action}": ${(err as Error).message}`);
    } finally {
      destroyQuietly(waiter);
    }
  }

  /** From now on (until `stopServing`), runs the commands that arrive, each at most once across the fleet. */
  serve(handler: CommandHandler): void {
    if (this.tail) return;
    const { log, key } = this.o;
    const replier = this.sender;
    this.tail = tailStream({
      redisUrl: this.o.redisUrl, key: COMMAND_STREAM, name: 'changelens-proxy-controller-commands', log, what: 'operators\' commands',
      // Those sent while no instance served (a take-over) and still within their deadline run too.
      backMs: COMMAND_DEADLINE_MS,
      onEntry: (_entryId, f) => {
        const { id, action, args, sentAt, sig, from } = f;
        if (!id || !action || args === undefined || !sentAt || !sig) return;
        if (!verify(key, `${id}\n${action}\n${args}\n${sentAt}`, sig)) {
          log.warn({ command: id, action, from }, 'refused a fleet command with a wrong signature (not from an instance holding the admin token)');
          return;
        }
        // Neither late nor from the future: what the operator gave up on never runs.
        if (!/^cmd-[a-z0-9]+-[0-9a-f]{6}$/.test(id) || Math.abs(Date.now() - Number(sentAt)) > COMMAND_DEADLINE_MS) return;
        void (async () => {
          // Once, even if the entry is added again (a replay) or read by two controllers across a take-over.
          if (await replier.set(`changelens:fleet:ran:${id}`, '1', { NX: true, EX: 60 }) === null) return;
          let reply: Reply;
          try {
            reply = { ok: true, value: await handler(action, JSON.parse(args)) };
          } catch (err) {
            // Not the controller after all (the lease passed meanwhile): the one that is runs it, or nobody does.
            if (err instanceof ChangeLensError && err.code === 'CL_ERR_NOT_CONTROLLER') {
              await replier.del(`changelens:fleet:ran:${id}`);
              return;
            }
            const e = err instanceof ChangeLensError ? err : new ChangeLensError('CL_ERR_INTERNAL', 500, (err as Error).message, 'see the controller instance\'s log');
            reply = { ok: false, error: { code: e.code, statusCode: e.statusCode, message: e.message, hint: e.hint } };
          }
          log.info({ command: id, action, from, ok: reply.ok }, 'ran a command from another instance');
          const text = JSON.stringify(reply);
          await replier.multi().lPush(replyKey(id), JSON.stringify({ reply: text, sig: mac(key, `reply\n${id}\n${text}`) })).expire(replyKey(id), 60).exec();
        })().catch((err: Error) => log.warn({ err: err.message, command: id }, 'could not run or answer a fleet command; its sender reports no answer'));
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
    destroyQuietly(this.sender);
  }
}
