import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prng } from '../bench/prng.js';
import { stableOnly, type RoutingTable } from '../lib/contracts/routing.js';
import { COLOR_PIN_COOKIE, COLOR_PIN_HEADER, readCookie, route, STICKY_COOKIE } from './router.js';


const rollout = (weight: number, rolloutId = 'r1'): RoutingTable => ({ stable: 'blue', candidate: 'green', candidateWeight: weight, rolloutId });
const colorOf = (d: ReturnType<typeof route>) => ('error' in d ? d.error : d.color);

describe('route', () => {
  it('the observed split converges to the weight', () => {
    fc.assert(fc.property(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer(), (weight, seed) => {
      const random = prng(seed);
      const n = 20_000;
      let green = 0;
      for (let i = 0; i < n; i++) if (colorOf(route({}, rollout(weight), random)) === 'green') green++;
      // 20,000 draws: 4.5 standard deviations of a binomial share is at most 0.016.
      expect(Math.abs(green / n - weight)).toBeLessThan(0.016);
    }), { numRuns: 30 });
  });

  it('a sticky user never changes colour within a rollout unless it is rolled back', () => {
    const stepsArb = fc.array(fc.oneof(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.constant(0)), { minLength: 1, maxLength: 12 });
    fc.assert(fc.property(stepsArb, fc.integer(), (weights, seed) => {
      const random = prng(seed);
      let jar: string | undefined; // the user's cookie
      let first: string | undefined;
      let rolledBack = false;
      for (const weight of weights) {
        if (weight === 0) rolledBack = true; // once at 0, the rollout is over for the candidate
        const table = rollout(rolledBack ? 0 : weight);
        for (let visit = 0; visit < 3; visit++) {
          const d = route(jar === undefined ? {} : { cookie: `other=1; ${STICKY_COOKIE}=${jar}` }, table, random);
          if ('error' in d) throw new Error(d.error);
          if (d.setSticky) jar = d.setSticky;
          if (rolledBack) expect(d.color).toBe('blue');
          else if (first === undefined) first = d.color;
          else expect(d.color).toBe(first);
        }
      }
    }));
  });

  it('a sticky cookie from another rollout is ignored', () => {
    const d = route({ cookie: `${STICKY_COOKIE}=old.green` }, rollout(0.5, 'new'), () => 0.99);
    expect(d).toEqual({ color: 'blue', reason: 'weight', setSticky: 'new.blue' });
  });

  it('a pin (header first, then cookie) always wins, whatever the table and the cookies', () => {
    const tableArb = fc.record({ stable: fc.constantFrom('blue' as const, 'green' as const), candidate: fc.constantFrom('blue' as const, 'green' as const, null), candidateWeight: fc.double({ min: 0, max: 1, noNaN: true }), rolloutId: fc.constantFrom('r1', null) });
    fc.assert(fc.property(tableArb, fc.constantFrom('blue' as const, 'green' as const), fc.constantFrom('blue' as const, 'green' as const), fc.double({ min: 0, max: 0.999, noNaN: true }), (table, headerPin, cookiePin, r) => {
      expect(route({ [COLOR_PIN_HEADER]: headerPin, cookie: `${COLOR_PIN_COOKIE}=${cookiePin}; ${STICKY_COOKIE}=r1.green` }, table, () => r)).toEqual({ color: headerPin, reason: 'pin' });
      expect(route({ cookie: `${STICKY_COOKIE}=r1.green; ${COLOR_PIN_COOKIE}=${cookiePin}` }, table, () => r)).toEqual({ color: cookiePin, reason: 'pin' });
    }));
  });

  it('refuses a bad pin, naming the header or cookie; with no rollout everything goes to stable', () => {
    expect(route({ [COLOR_PIN_HEADER]: 'purple' }, rollout(0.5), Math.random)).toEqual({ error: 'header x-changelens-color: expected blue or green, got "purple"' });
    expect(route({ cookie: `${COLOR_PIN_COOKIE}=teal` }, rollout(0.5), Math.random)).toEqual({ error: 'cookie changelens-color: expected blue or green, got "teal"' });
    fc.assert(fc.property(fc.double({ min: 0, max: 0.999, noNaN: true }), (r) => {
      expect(route({ cookie: `${STICKY_COOKIE}=r1.green` }, stableOnly('green'), () => r)).toEqual({ color: 'green', reason: 'stable' });
    }));
  });
});

describe('readCookie', () => {
  it('finds a cookie by exact name among others, decoded; tolerates malformed escapes', () => {
    expect(readCookie('a=1; changelens-sticky=r%2E1.green; b=2', 'changelens-sticky')).toBe('r.1.green');
    expect(readCookie('xchangelens-sticky=1', 'changelens-sticky')).toBeUndefined();
    expect(readCookie(['a=1', 'k=%E0%A4%A'], 'k')).toBe('%E0%A4%A');
  });
});
