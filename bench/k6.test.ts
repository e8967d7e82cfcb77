import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MIX, k6Script, parseMix } from './k6.js';

describe('k6Script', () => {
  it('is valid JavaScript with a constant-arrival-rate scenario and the weighted mix', () => {
    const script = k6Script({ target: 'http://127.0.0.1:8080', rate: 250, durationSeconds: 60, mix: DEFAULT_MIX });
    const file = join(mkdtempSync(join(tmpdir(), 'k6-')), 'load.mjs');
    writeFileSync(file, script);
    execFileSync(process.execPath, ['--check', file]); // syntax only: k6's modules are not resolved
    expect(script).toContain("executor: 'constant-arrival-rate', rate: 250, timeUnit: '1s', duration: '60s'");
    const mix = JSON.parse(/const MIX = (\[[\s\S]*?\n\]);/.exec(script)![1]!);
    expect(mix.map((m: { upTo: number }) => m.upTo)).toEqual([0.8, 0.9, 1]);
    expect(mix[2]).toMatchObject({ method: 'POST', path: '/api/process', body: '{"workMs":5}' });
  });

  it('ramps with a ramping-arrival-rate scenario', () => {
    const script = k6Script({ target: 'http://127.0.0.1:8080', rate: 100, durationSeconds: 60, rampSeconds: 10, mix: DEFAULT_MIX });
    expect(script).toContain("stages: [{ target: 100, duration: '10s' }, { target: 100, duration: '50s' }]");
  });
});

describe('parseMix', () => {
  it('reads METHOD:/path:weight items and names what it cannot read', () => {
    expect(parseMix('GET:/api/data?limit=5:3,POST:/api/process:1')).toEqual([
      { method: 'GET', path: '/api/data?limit=5', weight: 3 },
      { method: 'POST', path: '/api/process', weight: 1, body: {} },
    ]);
    expect(parseMix('PUT:/x:1')).toMatchObject({ error: expect.stringContaining('"PUT:/x:1"') });
    expect(parseMix('GET:/x:0')).toMatchObject({ error: expect.stringContaining('--mix') });
  });
});
