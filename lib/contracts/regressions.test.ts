import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TIMEOUT_RATE,
  REGRESSION_LIMITS,
  REGRESSION_TYPES,
  formatRegressionSpec,
  isRegressionType,
  parseRegressionSpec,
  regressionProblem,
  withDefaults,
  type Regression,
  type RegressionType,
} from './regressions.js';

const ALL_TYPES: RegressionType[] = ['cpu', 'db', 'dependency', 'errors'];
const NON_DEPENDENCY_TYPES = ALL_TYPES.filter((t) => t !== 'dependency');

/** "min-max" as the problem messages write a type's allowed range. */
const rangeOf = (type: RegressionType): string => `${REGRESSION_LIMITS[type].min}-${REGRESSION_LIMITS[type].max}`;

/** Parses a spec expecting problems, and returns them. */
function problemsOf(spec: string): string[] {
  const result = parseRegressionSpec(spec);
  if (!('problems' in result)) throw new Error(`parseRegressionSpec accepted ${JSON.stringify(spec)}: ${JSON.stringify(result)}`);
  return result.problems;
}

/** Parses a spec expecting it to be valid, and returns the regressions. */
function regressionsOf(spec: string): Regression[] {
  const result = parseRegressionSpec(spec);
  if (!('regressions' in result)) throw new Error(`parseRegressionSpec refused ${JSON.stringify(spec)}: ${JSON.stringify(result)}`);
  return result.regressions;
}

const typeArb = fc.constantFrom(...ALL_TYPES);

/** A valid intensity for `type`, anywhere in its range. */
function intensityArb(type: RegressionType): fc.Arbitrary<number> {
  const { min, max, integer } = REGRESSION_LIMITS[type];
  return integer ? fc.integer({ min, max }) : fc.double({ min, max, noNaN: true });
}

/** Valid timeout rates that String() writes in plain decimal notation (0, 1, and 1e-6 up). */
const rateArb = fc.oneof(fc.constantFrom(0, 1, DEFAULT_TIMEOUT_RATE), fc.double({ min: 1e-6, max: 1, noNaN: true }));

/** A valid regression of `type`; dependency sometimes carries a timeoutRate (the key is absent otherwise). */
function regressionArb(type: RegressionType): fc.Arbitrary<Regression> {
  if (type !== 'dependency') return intensityArb(type).map((intensity) => ({ type, intensity }));
  return fc
    .tuple(intensityArb(type), fc.option(rateArb, { nil: undefined }))
    .map(([intensity, timeoutRate]) => (timeoutRate === undefined ? { type, intensity } : { type, intensity, timeoutRate }));
}

/** Lists of valid regressions with distinct types, in any order. */
const regressionListArb = fc
  .uniqueArray(typeArb, { maxLength: ALL_TYPES.length })
  .chain((types) => fc.tuple(...types.map(regressionArb)));

/** An intensity outside `type`'s range, or a non-integer for an integer type (numbers only). */
function badIntensityArb(type: RegressionType): fc.Arbitrary<number> {
  const { min, max, integer } = REGRESSION_LIMITS[type];
  const outside = fc.oneof(
    fc.double({ min: -max, max: min, noNaN: true }).filter((x) => x < min),
    fc.double({ min: min / 100, max: min, noNaN: true }).filter((x) => x < min),
    fc.double({ max: min, noNaN: true }).filter((x) => x < min),
    fc.double({ min: max, max: max * 1000, noNaN: true }).filter((x) => x > max),
    fc.double({ min: max, noNaN: true }).filter((x) => x > max),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, min - 1e-9 * Math.max(1, min), max + 1),
  );
  if (!integer) return outside;
  return fc.oneof(outside, fc.double({ min, max, noNaN: true }).filter((x) => !Number.isInteger(x)));
}

/** Whether String(x) is something the spec grammar can carry as an intensity ([0-9.]+). */
const writable = (x: number): boolean => /^[0-9.]+$/.test(String(x));

/** Parts the spec grammar refuses outright. */
const MALFORMED_PARTS = ['cpu', 'cpu:', 'cpu:abc', ':5', 'cpu:5:6', 'cpu:-5', 'CPU:5', 'cpu: 5', 'cpu:5/', 'cpu:5/0.1/0.2', 'cpu:1x3', '__proto__:5'];

describe('REGRESSION_LIMITS and isRegressionType', () => {
  it('defines exactly the four regression types, each with a sensible range', () => {
    expect([...REGRESSION_TYPES].sort()).toEqual([...ALL_TYPES].sort());
    for (const type of ALL_TYPES) {
      const { min, max, integer, unit } = REGRESSION_LIMITS[type];
      expect(min).toBeGreaterThan(0);
      expect(max).toBeGreaterThan(min);
      if (integer) expect(Number.isInteger(min) && Number.isInteger(max)).toBe(true);
      expect(unit).not.toBe('');
    }
  });

  it('recognises the four types', () => {
    for (const type of ALL_TYPES) expect(isRegressionType(type)).toBe(true);
  });

  it('refuses Object.prototype names and other inherited keys', () => {
    for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__proto__', '__defineGetter__']) {
      expect(isRegressionType(name)).toBe(false);
    }
  });

  it('refuses any string that is not one of the four types', () => {
    fc.assert(
      fc.property(fc.string().filter((s) => !(ALL_TYPES as string[]).includes(s)), (s) => {
        expect(isRegressionType(s)).toBe(false);
      }),
    );
  });
});

describe('regressionProblem', () => {
  it('accepts any valid intensity, and any rate 0-1 on dependency', () => {
    fc.assert(
      fc.property(typeArb.chain((type) => fc.tuple(fc.constant(type), intensityArb(type))), ([type, intensity]) => {
        expect(regressionProblem(type, intensity)).toBeUndefined();
      }),
    );
    fc.assert(
      fc.property(intensityArb('dependency'), fc.double({ min: 0, max: 1, noNaN: true }), (intensity, rate) => {
        expect(regressionProblem('dependency', intensity, rate)).toBeUndefined();
      }),
    );
  });

  it('accepts the range bounds themselves', () => {
    for (const type of ALL_TYPES) {
      expect(regressionProblem(type, REGRESSION_LIMITS[type].min)).toBeUndefined();
      expect(regressionProblem(type, REGRESSION_LIMITS[type].max)).toBeUndefined();
    }
  });

  it('reports any intensity outside the range, or a non-integer for integer types, naming type, "intensity" and range', () => {
    fc.assert(
      fc.property(typeArb.chain((type) => fc.tuple(fc.constant(type), badIntensityArb(type))), ([type, intensity]) => {
        const problem = regressionProblem(type, intensity);
        expect(problem).toBeDefined();
        expect(problem).toContain(type);
        expect(problem).toContain('intensity');
        expect(problem).toContain(rangeOf(type));
      }),
    );
  });

  it('reports an intensity that is not a number at all', () => {
    fc.assert(
      fc.property(typeArb, fc.oneof(fc.string(), fc.constantFrom<unknown>(null, undefined, true, {}, [])), (type, intensity) => {
        const problem = regressionProblem(type, intensity);
        expect(problem).toContain(`${type} intensity`);
        expect(problem).toContain(rangeOf(type));
      }),
    );
  });

  it('refuses a timeoutRate on every type but dependency', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...NON_DEPENDENCY_TYPES).chain((type) => fc.tuple(fc.constant(type), intensityArb(type))),
        fc.double({ min: 0, max: 1, noNaN: true }),
        ([type, intensity], rate) => {
          const problem = regressionProblem(type, intensity, rate);
          expect(problem).toContain('timeoutRate');
          expect(problem).toContain('dependency');
        },
      ),
    );
  });

  it('refuses a dependency timeoutRate outside 0-1 or not a number', () => {
    const badRate = fc.oneof(
      fc.double({ max: 0, noNaN: true }).filter((x) => x < 0),
      fc.double({ min: 1, noNaN: true }).filter((x) => x > 1),
      fc.constantFrom<unknown>(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, '0.5', null, true),
    );
    fc.assert(
      fc.property(intensityArb('dependency'), badRate, (intensity, rate) => {
        const problem = regressionProblem('dependency', intensity, rate);
        expect(problem).toContain('timeoutRate');
        expect(problem).toContain('0-1');
      }),
    );
  });
});

describe('withDefaults', () => {
  it('gives a dependency without a rate DEFAULT_TIMEOUT_RATE, and keeps a given one (0 included)', () => {
    expect(DEFAULT_TIMEOUT_RATE).toBe(0.05);
    expect(withDefaults({ type: 'dependency', intensity: 200 })).toEqual({ type: 'dependency', intensity: 200, timeoutRate: DEFAULT_TIMEOUT_RATE });
    expect(withDefaults({ type: 'dependency', intensity: 200, timeoutRate: 0 })).toEqual({ type: 'dependency', intensity: 200, timeoutRate: 0 });
    expect(withDefaults({ type: 'dependency', intensity: 200, timeoutRate: 0.3 }).timeoutRate).toBe(0.3);
  });

  it('leaves other types alone and never mutates its argument', () => {
    fc.assert(
      fc.property(typeArb.chain(regressionArb), (r) => {
        const before = structuredClone(r);
        const out = withDefaults(r);
        expect(r).toEqual(before);
        if (r.type === 'dependency') expect(out).toEqual({ ...r, timeoutRate: r.timeoutRate ?? DEFAULT_TIMEOUT_RATE });
        else {
          expect(out).toEqual(r);
          expect('timeoutRate' in out).toBe(false);
        }
      }),
    );
  });
});

describe('parseRegressionSpec and formatRegressionSpec', () => {
  it('round-trips any list of distinct valid regressions, filling in defaults', () => {
    fc.assert(
      fc.property(regressionListArb, (list) => {
        expect(parseRegressionSpec(formatRegressionSpec(list))).toEqual({ regressions: list.map(withDefaults) });
      }),
    );
  });

  it('formats the documented example and parses it back', () => {
    const list: Regression[] = [
      { type: 'cpu', intensity: 50 },
      { type: 'errors', intensity: 0.1 },
      { type: 'dependency', intensity: 200, timeoutRate: 0.1 },
    ];
    expect(formatRegressionSpec(list)).toBe('cpu:50,errors:0.1,dependency:200/0.1');
    expect(regressionsOf('cpu:50,errors:0.1,dependency:200/0.1')).toEqual(list);
  });

  // String() writes numbers below 1e-6 in exponent notation (1e-7 -> "1e-7"): the grammar accepts it.
  it('round-trips a dependency whose timeoutRate is below 1e-6 (exponent notation)', () => {
    const list: Regression[] = [{ type: 'dependency', intensity: 200, timeoutRate: 1e-7 }];
    expect(regressionProblem('dependency', 200, 1e-7)).toBeUndefined();
    expect(parseRegressionSpec(formatRegressionSpec(list))).toEqual({ regressions: list });
  });

  it('reads an empty spec, or one of only commas and spaces, as no regressions', () => {
    expect(formatRegressionSpec([])).toBe('');
    expect(regressionsOf('')).toEqual([]);
    expect(regressionsOf(' , ,, ')).toEqual([]);
  });

  it('tolerates whitespace around parts and empty parts', () => {
    expect(regressionsOf(' cpu:5 , ,errors:0.5 ')).toEqual([
      { type: 'cpu', intensity: 5 },
      { type: 'errors', intensity: 0.5 },
    ]);
    const ws = fc.stringMatching(/^[ \t]{0,3}$/);
    fc.assert(
      fc.property(regressionListArb, fc.array(ws, { minLength: 16, maxLength: 16 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), (list, pads, empties) => {
        const parts = formatRegressionSpec(list).split(',').filter(Boolean);
        const spec = parts.map((p, i) => `${pads[2 * i]}${p}${pads[2 * i + 1]}${empties[i] ? `,${pads[8 + i]}` : ''}`).join(',');
        expect(parseRegressionSpec(spec)).toEqual({ regressions: list.map(withDefaults) });
      }),
    );
  });

  it('gives a dependency without a rate DEFAULT_TIMEOUT_RATE', () => {
    expect(regressionsOf('dependency:200')).toEqual([{ type: 'dependency', intensity: 200, timeoutRate: DEFAULT_TIMEOUT_RATE }]);
    expect(regressionsOf('dependency:200/0')).toEqual([{ type: 'dependency', intensity: 200, timeoutRate: 0 }]);
    expect(regressionsOf('dependency:200/1')).toEqual([{ type: 'dependency', intensity: 200, timeoutRate: 1 }]);
  });

  it('reports an out-of-range or non-integer intensity, quoting the part and naming type, "intensity" and range', () => {
    fc.assert(
      fc.property(
        typeArb.chain((type) => fc.tuple(fc.constant(type), badIntensityArb(type).filter(writable))),
        ([type, intensity]) => {
          const part = `${type}:${String(intensity)}`;
          const problems = problemsOf(part);
          expect(problems).toHaveLength(1);
          expect(problems[0]).toContain(`"${part}"`);
          expect(problems[0]).toContain(`${type} intensity`);
          expect(problems[0]).toContain(rangeOf(type));
        },
      ),
    );
  });

  it('reports malformed parts, quoting each', () => {
    for (const part of MALFORMED_PARTS) {
      const problems = problemsOf(part);
      expect(problems, part).toHaveLength(1);
      expect(problems[0]).toContain(`"${part}"`);
      expect(problems[0]).toContain('type:intensity');
    }
  });

  it('reports unknown types, quoting the part and the type', () => {
    for (const part of ['memory:5', 'constructor:5', 'tostring:5', 'valueof:1']) {
      const problems = problemsOf(part);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain(`"${part}"`);
      expect(problems[0]).toContain('unknown regression type');
      expect(problems[0]).toContain(`"${part.split(':')[0]}"`);
    }
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]{1,12}$/).filter((s) => !isRegressionType(s)), fc.integer({ min: 1, max: 100 }), (type, n) => {
        const part = `${type}:${n}`;
        expect(problemsOf(part)).toEqual([expect.stringContaining(`"${part}"`)]);
      }),
    );
  });

  it('reports a type given twice, quoting the second part', () => {
    fc.assert(
      fc.property(typeArb.chain((type) => fc.tuple(regressionArb(type), regressionArb(type))), ([a, b]) => {
        const second = formatRegressionSpec([b]);
        const problems = problemsOf(`${formatRegressionSpec([a])}, ${second}`);
        expect(problems).toHaveLength(1);
        expect(problems[0]).toContain(`"${second}"`);
        expect(problems[0]).toContain(`${a.type} is given twice`);
      }),
    );
  });

  // Every problem at once: a duplicate is reported even when its first occurrence was refused.
  it('reports a duplicate even when the first occurrence of the type was invalid', () => {
    const problems = problemsOf('cpu:0,cpu:5');
    expect(problems).toHaveLength(2);
    expect(problems[1]).toContain('"cpu:5"');
    expect(problems[1]).toContain('twice');
  });

  it('refuses a timeoutRate on non-dependency types and outside 0-1, quoting the part', () => {
    for (const type of NON_DEPENDENCY_TYPES) {
      const part = `${type}:${REGRESSION_LIMITS[type].min}/0.1`;
      expect(problemsOf(part)).toEqual([expect.stringContaining(`"${part}": timeoutRate`)]);
    }
    for (const part of ['dependency:200/1.5', 'dependency:200/2', 'dependency:200/.', 'dependency:200/1.0.1']) {
      const problems = problemsOf(part);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain(`"${part}"`);
      expect(problems[0]).toContain('timeoutRate');
      expect(problems[0]).toContain('0-1');
    }
    fc.assert(
      fc.property(intensityArb('dependency'), fc.double({ min: 1, max: 1e6, noNaN: true }).filter((x) => x > 1 && writable(x)), (intensity, rate) => {
        const part = `dependency:${intensity}/${rate}`;
        expect(problemsOf(part)).toEqual([expect.stringContaining(`"${part}": timeoutRate`)]);
      }),
    );
  });

  it('reports every problem of a spec with several bad parts at once, in order', () => {
    const problems = problemsOf(' memory:5 ,cpu:0, cpu ,errors:0.5,,errors:0.6,dependency:5/2,db:7,cpu:1.5');
    expect(problems).toHaveLength(6);
    ['"memory:5"', '"cpu:0"', '"cpu"', '"errors:0.6"', '"dependency:5/2"', '"cpu:1.5"'].forEach((quoted, i) => expect(problems[i]).toContain(quoted));
  });

  it('reports one problem per bad part whatever valid parts surround them', () => {
    const badPartArb = fc.oneof(
      fc.constantFrom(...MALFORMED_PARTS),
      fc.tuple(fc.stringMatching(/^[a-z]{1,12}$/).filter((s) => !isRegressionType(s)), fc.nat(1000)).map(([t, n]) => `${t}:${n}`),
    );
    fc.assert(
      fc.property(
        regressionListArb.map((list) => formatRegressionSpec(list).split(',').filter(Boolean)),
        fc.array(badPartArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
        (good, bad, coins) => {
          // Interleave the two lists, keeping each one's order.
          const parts: string[] = [];
          let g = 0;
          let b = 0;
          while (g < good.length || b < bad.length) {
            const takeGood = b >= bad.length || (g < good.length && coins[g + b] === true);
            parts.push(takeGood ? good[g++]! : bad[b++]!);
          }
          const problems = problemsOf(parts.join(','));
          expect(problems).toHaveLength(bad.length);
          bad.forEach((part, i) => expect(problems[i]).toContain(`"${part}"`));
        },
      ),
    );
  });
});
