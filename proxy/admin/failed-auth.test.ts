// The failed-auth limiter on a manual clock: the limit, the window, bounded memory and audit writes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FailedAuthLimiter } from './failed-auth.js';

describe('FailedAuthLimiter', () => {
  it('blocks at the limit until the window ends, then forgets', () => {
    const l = new FailedAuthLimiter(3, 60_000);
    for (let i = 1; i <= 2; i++) expect(l.fail('a', 1_000 * i).blockedNow).toBe(false);
    expect(l.check('a', 3_000).blockedMs).toBe(0);
    expect(l.fail('a', 3_000)).toMatchObject({ blockedNow: true, failures: 3 });
    expect(l.check('a', 3_000).blockedMs).toBe(58_000);
    expect(l.check('b', 3_000).blockedMs).toBe(0);
    expect(l.check('a', 61_000).blockedMs).toBe(0);
    expect(l.fail('a', 61_000).failures).toBe(1);
  });

  it('whatever the failures, blocked exactly when a client reached the limit within its window', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 5_000 })), { maxLength: 60 }), (events) => {
      const l = new FailedAuthLimiter(5, 10_000);
      let now = 0;
      const model = new Map<string, { start: number; n: number }>();
      for (const [client, step] of events) {
        now += step;
        const m = model.get(client);
        const current = m && now - m.start < 10_000 ? m : undefined;
        expect(l.check(client, now).blockedMs > 0).toBe(current !== undefined && current.n >= 5);
        l.fail(client, now);
        model.set(client, current ? { start: current.start, n: current.n + 1 } : { start: now, n: 1 });
      }
    }));
  });

  it('remembers a bounded number of clients and audits at most its cap per window', () => {
    const l = new FailedAuthLimiter(2, 60_000, 100, 10);
    let audited = 0;
    for (let i = 0; i < 1_000; i++) if (l.fail(`10.0.${i >> 8}.${i & 255}`, 0).audit) audited++;
    expect(audited).toBe(5); // half the cap for first failures; the rest is kept for blocks
    expect((l as unknown as { clients: Map<string, unknown> }).clients.size).toBe(100);
    expect(l.fail('fresh', 60_000).audit).toBe(true);
  });
});
