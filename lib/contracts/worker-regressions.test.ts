import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatWorkerRegressionSpec, parseWorkerRegressionSpec, WORKER_REGRESSION_LIMITS, WORKER_REGRESSION_TYPES, type WorkerRegression } from './worker-regressions.js';

describe('worker regression specs (CHANGELENS_WORKER_REGRESSION)', () => {
  it('round-trips every valid set of regressions through its text form', () => {
    const regression = fc.constantFrom(...WORKER_REGRESSION_TYPES).chain((type) => {
      const { min, max, integer } = WORKER_REGRESSION_LIMITS[type];
      return (integer ? fc.integer({ min, max }) : fc.double({ min, max, noNaN: true })).map((intensity): WorkerRegression => ({ type, intensity }));
    });
    fc.assert(fc.property(fc.uniqueArray(regression, { selector: (r) => r.type, maxLength: 3 }), (regressions) => {
      expect(parseWorkerRegressionSpec(formatWorkerRegressionSpec(regressions))).toEqual({ regressions });
    }));
  });

  it('refuses what is out of range, unknown, repeated or carries a rate, naming the part', () => {
    const problems = (spec: string): string[] => {
      const r = parseWorkerRegressionSpec(spec);
      if (!('problems' in r)) throw new Error(`accepted ${spec}`);
      return r.problems;
    };
    expect(problems('errors:1.5')).toEqual(['"errors:1.5": errors intensity: expected a number 0.0001-1 (share of attempts failing), got 1.5']);
    expect(problems('slow:0.5')[0]).toMatch(/^"slow:0.5": slow intensity: expected an integer 1-60000/);
    expect(problems('cpu:50')[0]).toBe('"cpu:50": unknown regression type "cpu" (expected one of slow, errors, crash)');
    expect(problems('errors:0.1,errors:0.2')[0]).toBe('"errors:0.2": errors is given twice');
    expect(problems('slow:10/0.5')[0]).toBe('"slow:10/0.5": a worker regression has no /rate');
    expect(problems('errors')[0]).toMatch(/^"errors": expected type:intensity, e\.g\. errors:0\.2 or slow:50/);
  });
});
