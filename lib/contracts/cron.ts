// What a schedule may be: a 5-field cron expression both node-cron (which fires it) and
// cron-parser (which computes next and previous runs) accept. Config and the backup scheduler
// share this one check.
import { CronExpressionParser } from 'cron-parser';
import cron from 'node-cron';

/** Null when `expression` is a valid 5-field cron expression, else what is wrong with it. */
export function cronProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/);
  // Seconds (a sixth field) would let a typo run a backup every second.
  if (fields.length !== 5) return `expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  if (!cron.validate(expression)) return 'not a valid cron expression';
  try {
    CronExpressionParser.parse(expression);
  } catch (err) {
    return (err as Error).message;
  }
  return null;
}
