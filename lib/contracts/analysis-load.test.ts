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
      ['10,/./_changelens/api/status', 'not /_changelens'], ['10,/x/../_changelens/metrics', 'dot segments'], ['10,/%2e/_changelens', 'dot segments'],
      ['10,/x/%2E%2E/_changelens', 'dot segments'], ['10,/a\\..\\_changelens', 'backslashes'], ['10,/_CHANGELENS/api', 'not /_changelens'],
      ['10,/healthz', '/healthz'], ['10,/readyz?x=1', '/readyz'], ['10,/a#frag', 'path "/a#frag"'],
      [`10,${Array.from({ length: 11 }, (_, i) => `/p${i}`).join(',')}`, 'at most 10 paths'],
    ] as const) {
      const r = parseAnalysisLoad(text);
      expect('error' in r && r.error, text).toContain(says);
    }
  });

  it('whatever it accepts is a positive bounded rate and paths a URL parser reads back unchanged, never the proxy\'s own', () => {
    const segment = fc.constantFrom('api', 'data', '.', '..', '%2e', '_changelens', 'healthz', 'readyz', 'a\\b', '', 'x?y=1', '%5F', '#f');
    const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join('/')}`);
    const text = fc.tuple(fc.integer({ min: 1, max: 600 }), fc.array(path, { maxLength: 3 })).map(([rate, paths]) => [String(rate), ...paths].join(','));
    fc.assert(fc.property(fc.oneof(text, fc.string({ maxLength: 60 })), (text) => {
      const r = parseAnalysisLoad(text);
      if ('error' in r) return;
      expect(r.rate).toBeGreaterThan(0);
      expect(r.rate).toBeLessThanOrEqual(ANALYSIS_LOAD_MAX_RATE);
      for (const p of r.paths) {
        const read = new URL(p, 'http://appliance.invalid');
        expect(read.origin).toBe('http://appliance.invalid');
        expect(read.pathname + read.search).toBe(p);
        expect(read.pathname.toLowerCase().startsWith('/_changelens')).toBe(false);
        expect(['/healthz', '/readyz']).not.toContain(read.pathname);
      }
    }));
  });
});
