// When backups run and when one is overdue. node-cron fires the runs; the arithmetic (next run,
// previous run, overdue) is pure, on cron-parser with an explicit clock, so it is property-tested
// and the status can say "next at …" without waiting for a tick.
import { CronExpressionParser } from 'cron-parser';
import cron from 'node-cron';
export { cronProblem } from '../lib/contracts/cron.js';

export type ScheduleName = 'postgres' | 'redis' | 'verify';

export interface Schedules {
  /** A 5-field cron expression, or null when that schedule is off. */
  postgres: string | null;
  redis: string | null;
  verify: string | null;
}

/** A run may take this long after its scheduled time before the backup counts as overdue. */
export const OVERDUE_GRACE_MS = 60 * 60_000;

export function nextRun(expression: string, after: number): number {
  return CronExpressionParser.parse(expression, { currentDate: new Date(after) }).next().getTime();
}

/** The latest scheduled time at or before `at` (a run scheduled exactly at `at` counts). */
export function previousRun(expression: string, at: number): number {
  return CronExpressionParser.parse(expression, { currentDate: new Date(at + 1) }).prev().getTime();
}

/**
 * Overdue: a run was due (after the appliance started watching, `since`, and more than the grace
 * ago) and no good backup of that kind was taken at or after it. A fresh appliance is not overdue
 * before its first scheduled run.
 */
export function isOverdue(expression: string | null, lastGoodAt: number | null, since: number, now: number): boolean {
  if (expression === null) return false;
  const due = previousRun(expression, now - OVERDUE_GRACE_MS);
  if (due < since) return false;
  return lastGoodAt === null || lastGoodAt < due;
}

export interface ScheduledTasks {
  stop(): Promise<void>;
}

/** Starts one node-cron task per schedule that is on; a run never overlaps the previous one. */
export function startSchedules(schedules: Schedules, run: (name: ScheduleName) => Promise<unknown>): ScheduledTasks {
  const tasks = (Object.entries(schedules) as Array<[ScheduleName, string | null]>)
    .filter((entry): entry is [ScheduleName, string] => entry[1] !== null)
    .map(([name, expression]) => cron.schedule(expression, async () => { await run(name); }, { name: `backup-${name}`, noOverlap: true }));
  return {
    async stop() {
      for (const task of tasks) await task.destroy();
    },
  };
}
