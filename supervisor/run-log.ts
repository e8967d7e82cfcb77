// When the appliance ran: one JSON line per start and stop in state/runs.jsonl, so `changelens
// cost` can count observed instance-hours (and operators can see restarts) without a database.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

export interface RunEvent {
  event: 'start' | 'stop';
  at: string;
  pid: number;
}

export function recordRun(path: string, event: RunEvent['event']): void {
  try {
    appendFileSync(path, JSON.stringify({ event, at: new Date().toISOString(), pid: process.pid }) + '\n', { mode: 0o600 });
  } catch {
    // Accounting only: never a reason to fail a boot or a stop.
  }
}

/** When this data dir's appliance first started (null: never recorded). */
export function firstStart(path: string): Date | null {
  if (!existsSync(path)) return null;
  const first = readFileSync(path, 'utf8').split('\n', 1)[0];
  try {
    const at = Date.parse((JSON.parse(first ?? '') as RunEvent).at);
    return Number.isNaN(at) ? null : new Date(at);
  } catch {
    return null;
  }
}

/** Milliseconds the appliance ran within [since, now]; a start without a stop (a crash, or still running) runs until the next start or now. */
export function runningMs(path: string, since: Date, now = new Date()): { ms: number; starts: number } {
  if (!existsSync(path)) return { ms: 0, starts: 0 };
  const events = readFileSync(path, 'utf8').split('\n').filter(Boolean).flatMap((line) => {
    try {
      return [JSON.parse(line) as RunEvent];
    } catch {
      return [];
    }
  });
  let total = 0;
  let starts = 0;
  let openedAt: number | undefined;
  const clamp = (t: number) => Math.min(now.getTime(), Math.max(since.getTime(), t));
  for (const e of events) {
    const t = Date.parse(e.at);
    if (Number.isNaN(t)) continue;
    if (e.event === 'start') {
      if (openedAt !== undefined) total += clamp(t) - clamp(openedAt);
      openedAt = t;
      if (t >= since.getTime()) starts++;
    } else if (openedAt !== undefined) {
      total += clamp(t) - clamp(openedAt);
      openedAt = undefined;
    }
  }
  if (openedAt !== undefined) total += clamp(now.getTime()) - clamp(openedAt);
  return { ms: total, starts };
}
