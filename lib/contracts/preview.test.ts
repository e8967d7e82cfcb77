import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { previewKey, signPreview, verifyPreview } from './preview.js';

const key = previewKey('Adm1n-T0ken_of-forty.characters~xyzABCDE');

describe('preview credentials', () => {
  it('grant their purpose until they expire, under the key that signed them only', () => {
    fc.assert(fc.property(fc.constantFrom('preview', 'analysis' as const), fc.integer({ min: 1_000, max: 10 ** 9 }), (purpose, ttlSeconds) => {
      const now = 1_800_000_000_000;
      const c = signPreview(key, purpose, now + ttlSeconds * 1000);
      expect(verifyPreview(key, c, now)).toBe(purpose);
      expect(verifyPreview(key, c, now + ttlSeconds * 1000)).toBeNull();
      expect(verifyPreview(previewKey('another-token-of-forty-characters~xyzAB'), c, now)).toBeNull();
    }));
  });

  it('refuse any altered credential: purpose, expiry or signature', () => {
    const now = 1_800_000_000_000;
    const c = signPreview(key, 'preview', now + 3_600_000);
    const [, , exp, sig] = c.split('.');
    expect(verifyPreview(key, `p1.analysis.${exp}.${sig}`, now)).toBeNull();
    expect(verifyPreview(key, `p1.preview.${Number(exp) + 3600}.${sig}`, now)).toBeNull();
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (junk) => { expect(verifyPreview(key, junk, now)).toBeNull(); }));
  });
});
