// Hooks fired on deploy, promote and rollback: webhooks (POST of the event as JSON) and one shell
// command (the event as JSON on stdin and in CHANGELENS_EVENT). They run after the routing change
// has taken effect and never delay or undo it; each outcome is returned for the audit log.
import { redactUrl } from '../lib/redact.js';
import { postJson, runCommand } from '../lib/notify.js';

export type HookEventType = 'deploy' | 'promote' | 'rollback';

export interface HookEvent {
  type: HookEventType;
  deploymentId: string;
  version: string;
  strategy: string;
  phase: string;
  reason: string | null;
  at: string;
}

export interface HookOutcome {
  hook: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface HookOptions {
  urls: readonly string[];
  command: string | undefined;
  timeoutMs: number;
}

export function fireHooks(event: HookEvent, options: HookOptions): Promise<HookOutcome[]> {
  const body = JSON.stringify(event);
  // Named by scheme and host only in outcomes (audited, logged): a webhook's path is often its secret.
  const runs = options.urls.map((url) => timed(`webhook ${redactUrl(url)}`, () => postJson(url, body, options.timeoutMs)));
  if (options.command) runs.push(timed('command', () => runCommand(options.command!, body, event.type, options.timeoutMs)));
  return Promise.all(runs);
}

async function timed(hook: string, fn: () => Promise<void>): Promise<HookOutcome> {
  const t = performance.now();
  try {
    await fn();
    return { hook, ok: true, ms: Math.round(performance.now() - t) };
  } catch (err) {
    return { hook, ok: false, ms: Math.round(performance.now() - t), error: (err as Error).message };
  }
}
