import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { releaseSecretsKey, sealSecret, SEALED_PREFIX, unsealEnv } from './release-secrets.js';

const key = releaseSecretsKey('backup-key-0123456789abcdef');

describe('sealed release secrets', () => {
  it('open to what was sealed, and never show it sealed', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (value) => {
      const sealed = sealSecret(key, value);
      expect(sealed.startsWith(SEALED_PREFIX)).toBe(true);
      if (value.length >= 4) expect(sealed).not.toContain(value);
      expect(unsealEnv(key, { A: sealed, B: 'plain' })).toEqual({ env: { A: value, B: 'plain' } });
    }));
  });

  it('refuse another key or an altered value, naming the setting', () => {
    const sealed = sealSecret(key, 'hunter2');
    expect(unsealEnv(releaseSecretsKey('another-backup-key-0123456789'), { DB_PASSWORD: sealed })).toEqual({ error: expect.stringContaining('DB_PASSWORD: a sealed secret this appliance cannot open') });
    const altered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    expect(unsealEnv(key, { DB_PASSWORD: altered })).toMatchObject({ error: expect.stringContaining('DB_PASSWORD') });
  });
});
