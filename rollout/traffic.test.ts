import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readRoutingSnapshot } from '../lib/routing-snapshot.js';
import { Traffic } from './traffic.js';

describe('Traffic', () => {
  const d = { id: 'dep-1', stableColor: 'blue' as const, candidateColor: 'green' as const };

  it('swaps whole tables: all to one colour, a split, and back to stable keeping the rollout\'s identity', () => {
    const traffic = new Traffic(join(mkdtempSync(join(tmpdir(), 'traffic-')), 'routing.json'), 'blue');
    const before = traffic.current();
    expect(before).toEqual({ stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null });
    traffic.split(d, 0.25);
    expect(traffic.current()).toEqual({ stable: 'blue', candidate: 'green', candidateWeight: 0.25, rolloutId: 'dep-1' });
    expect(before.candidateWeight).toBe(0); // a table once read never changes under its reader
    traffic.toStable(d);
    // Sticky cookies of this rollout still name it; no new request goes to the candidate.
    expect(traffic.current()).toEqual({ stable: 'blue', candidate: 'green', candidateWeight: 0, rolloutId: 'dep-1' });
    traffic.allTo('green');
    expect(traffic.current()).toEqual({ stable: 'green', candidate: null, candidateWeight: 0, rolloutId: null });
  });

  it('mirrors to the candidate while warming up or analysed, and never after the swap back to stable', () => {
    const traffic = new Traffic(join(mkdtempSync(join(tmpdir(), 'traffic-')), 'routing.json'), 'blue');
    traffic.warmup(d, true);
    expect(traffic.current()).toEqual({ stable: 'blue', candidate: null, candidateWeight: 0, rolloutId: null, mirror: { color: 'green', share: 1, purpose: 'warmup', rolloutId: 'dep-1' } });
    traffic.warmup(d, false);
    expect(traffic.current().mirror).toBeUndefined();
    traffic.split(d, 0.05, 0.2);
    expect(traffic.current()).toMatchObject({ candidateWeight: 0.05, mirror: { color: 'green', share: 0.2, purpose: 'analysis', rolloutId: 'dep-1' } });
    traffic.toStable(d);
    expect(traffic.current().mirror).toBeUndefined();
    traffic.split(d, 0.05, 0.2);
    traffic.allTo('blue');
    expect(traffic.current().mirror).toBeUndefined();
  });

  it('snapshots the active colour and its release for a restarted proxy', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'traffic-')), 'routing.json');
    new Traffic(path, 'blue').snapshot('green', { version: 'v2', artifact: 'builtin', env: { A: '1' } });
    expect(readRoutingSnapshot(path)).toMatchObject({ activeColor: 'green', release: { version: 'v2', env: { A: '1' } } });
  });
});
