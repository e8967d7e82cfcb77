import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ANALYSIS_LOAD_MAX_RATE, parseAnalysisLoad } from './analysis-load.js';

describe('parseAnalysisLoad', () => {
  it('reads a rate and paths, "/" when none', () => {
    expect(parseAnalysisLoad('40')).toEqual({ rate: 40, paths: ['/'] });
    expect(parseAnalysisLoad(' 12.5 , /api/data , /api/items?limit=5 ')).toEqual({ rate: 12.5, paths: ['/api/data', '/api/items?limit=5'] });
  });

  it('refuses what could leave the appliance or reach its admin API, naming the part', () => {
    for (const [text, says] of [
      ['0', 'RATE'], ['-1', 'RATE'], ['fast', 'RATE'], [`${ANALYSIS_LOAD_MAX_RATE + 1}`, 'RATE'], ['', 'RATE'],
      ['10,api/data', 'path "api/data"'], ['10,//evil.example/x', 'path "//evil.example/x"'], ['10,http://evil.example/', 'path "http://evil.example/"'],
      ['10,/_changelens/api/deployment/rollback', 'not /_changelens'], ['10,/a b', 'path "/a b"'], [`10,/${'a'.repeat(200)}`, '≤ 200'],
      [`10,${Array.from({ length: 11 }, (_, i) => `/p${i}`).join(',')}`, 'at most 10 paths'],
    ] as const) {
      const r = parseAnalysisLoad(text);
      expect('error' in r && r.error, text).toContain(says);
    }
  });

  it('whatever it accepts is a positive bounded rate and origin-form paths', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (text) => {
      const r = parseAnalysisLoad(text);
      if ('error' in r) return;
      expect(r.rate).toBeGreaterThan(0);
      expect(r.rate).toBeLessThanOrEqual(ANALYSIS_LOAD_MAX_RATE);
      for (const p of r.paths) {
        expect(p.startsWith('/') && !p.startsWith('//') && !p.startsWith('/_changelens')).toBe(true);
        expect(p).not.toMatch(/\s/);
      }
    }));
  });
});
