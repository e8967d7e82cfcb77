// How ChangeLens tells the outside world: a webhook (POST of an event as JSON) or a shell command
// (the event as JSON on stdin and in CHANGELENS_EVENT_JSON), each bounded by a timeout. Deployment
// hooks (rollout/hooks.ts), the monitor's alerts and backup failures (supervisor/) all use these.
import { spawn } from 'node:child_process';

export async function postJson(url: string, body: string, timeoutMs: number): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    // fetch's own message may carry the URL (credentials included); outcomes are audited and logged.
    throw new Error(connectError(err, timeoutMs));
  }
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

/** Why a request got no answer, in words that carry no part of the URL. */
export function connectError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return `could not connect${e.cause?.code ? ` (${e.cause.code})` : ''}`;
}
