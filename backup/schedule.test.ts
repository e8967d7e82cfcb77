// Schedule arithmetic with a controllable clock (no timers): next and previous runs bracket any
// instant with no scheduled time between them, and "overdue" means exactly "a run was due since
// the appliance started and no good backup followed it".
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cronProblem, isOverdue, nextRun, OVERDUE_GRACE_MS, previousRun } from './schedule.js';

const MINUTE = 60_000;
// Expressions of the kinds operators write: fixed or stepped minutes and hours, optional weekday.
const cronArb = fc.tuple(
  fc.oneof(fc.integer({ min: 0, max: 59 }).map(String), fc.constantFrom('*/5', '*/15', '0,30')),
  fc.oneof(fc.integer({ min: 0, max: 23 }).map(String), fc.constantFrom('*', '*/6', '*/2', '2,14')),
  fc.constantFrom('*', '0', '1-5'),
).map(([m, h, dow]) => `${m} ${h} * * ${dow}`);
const instantArb = fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2028, 0, 1) });

describe('cronProblem', () => {
  it.each([
    ['0 2 * * *', null], ['0 */6 * * *', null], ['30 3 * * 0', null],
  ])('accepts %s', (expression, problem) => expect(cronProblem(expression)).toBe(problem));
  it.each([
    ['0 0 2 * * *', /expected 5 fields/], ['61 * * * *', /./], ['every day', /expected 5 fields/], ['* * * *', /expected 5 fields/],
  ])('refuses %s', (expression, problem) => expect(cronProblem(expression)).toMatch(problem));
});

describe('next and previous runs', () => {
  it('bracket every instant: previous ≤ t < next, both are runs, and nothing runs in between', () => {
    fc.assert(fc.property(cronArb, instantArb, (expression, t) => {
      const prev = previousRun(expression, t);
      const next = nextRun(expression, t);
      expect(prev).toBeLessThanOrEqual(t);
      expect(next).toBeGreaterThan(t);
      expect(nextRun(expression, prev)).toBe(next);
      expect(previousRun(expression, next - 1)).toBe(prev);
    }), { numRuns: 200 });
  });

  it('the defaults, in the machine\'s time zone: Postgres daily at 02:00, Redis every 6 hours', () => {
    const t = new Date(2026, 10, 29, 5, 0).getTime();
    expect(nextRun('0 2 * * *', t)).toBe(new Date(2026, 10, 30, 2, 0).getTime());
    expect(previousRun('0 */6 * * *', t)).toBe(new Date(2026, 10, 29, 0, 0).getTime());
    expect(previousRun('0 */6 * * *', new Date(2026, 10, 29, 6, 0).getTime())).toBe(new Date(2026, 10, 29, 6, 0).getTime());
  });
});

describe('isOverdue', () => {
  it('never when a good backup was taken at or after the latest due run', () => {
    fc.assert(fc.property(cronArb, instantArb, fc.integer({ min: 0, max: 10 * MINUTE }), (expression, now, after) => {
      const due = previousRun(expression, now - OVERDUE_GRACE_MS);
      expect(isOverdue(expression, Math.min(now, due + after), 0, now)).toBe(false);
    }), { numRuns: 200 });
  });

  it('always when a run was due since the start and the last good backup is older (or none)', () => {
    fc.assert(fc.property(cronArb, instantArb, fc.integer({ min: 1, max: 30 * 24 * 60 * MINUTE }), fc.boolean(), (expression, now, older, none) => {
      const due = previousRun(expression, now - OVERDUE_GRACE_MS);
      expect(isOverdue(expression, none ? null : due - older, due - 1, now)).toBe(true);
    }), { numRuns: 200 });
  });

  it('not before the first run after the appliance started, nor when the schedule is off', () => {
    fc.assert(fc.property(cronArb, instantArb, (expression, now) => {
      const due = previousRun(expression, now - OVERDUE_GRACE_MS);
      expect(isOverdue(expression, null, due + 1, now)).toBe(false);
      expect(isOverdue(null, null, 0, now)).toBe(false);
    }), { numRuns: 200 });
  });
});
