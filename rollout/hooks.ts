// Hooks fired on deploy, promote and rollback: webhooks (POST of the event as JSON) and one shell
// command (the event as JSON on stdin and in CHANGELENS_EVENT). They run after the routing change
// has taken effect and never delay or undo it; each outcome is returned for the audit log.
import { spawn } from 'node:child_process';

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
  const runs = options.urls.map((url) => timed(`webhook ${url}`, () => postJson(url, body, options.timeoutMs)));
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

export async function postJson(url: string, body: string, timeoutMs: number): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`answered HTTP ${res.status}`);
}

/** Runs `command` with the event's JSON on stdin and in CHANGELENS_EVENT_JSON, its type in CHANGELENS_EVENT. */
export function runCommand(command: string, body: string, type: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CHANGELENS_EVENT: type, CHANGELENS_EVENT_JSON: body },
      stdio: ['pipe', 'ignore', 'pipe'],
      // Its own process group, so a timeout kills what the shell started too (sleep, curl …).
      detached: true,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-500)));
    child.stdin.on('error', () => {}); // a command that does not read stdin
    child.stdin.end(body);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`killed after the ${timeoutMs} ms timeout`));
      else if (code === 0) resolve();
      else reject(new Error(`exited ${code}${stderr ? `: ${stderr.trim()}` : ''}`));
    });
  });
}
