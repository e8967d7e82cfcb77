import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { releaseSecretsKey, sealSecret, SEALED_PREFIX, unsealEnv } from './release-secrets.js';

const key = releaseSecretsKey('backup-key-0123456789abcdef');

describe('sealed release secrets', () => {
  it('open to what was sealed, and never show it sealed', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (value) => {
      const sealed = sealSecret(key, value);
      expect(sealed.startsWith(SEALED_PREFIX)).toBe(true);
      // The value's bytes are not in the sealed form (checked on the decoded bytes, not text that could match by chance).
      if (value.length >= 8) expect(Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64url').includes(Buffer.from(value))).toBe(false);
      expect(unsealEnv(key, { A: sealed, B: 'plain' })).toEqual({ env: { A: value, B: 'plain' } });
    }));
  });

  it('refuse another key or an altered value, naming the setting', () => {
    const sealed = sealSecret(key, 'hunter2');
    expect(unsealEnv(releaseSecretsKey('another-backup-key-0123456789'), { DB_PASSWORD: sealed })).toEqual({ error: expect.stringContaining('DB_PASSWORD: a sealed secret this appliance cannot open') });
    const raw = Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64url');
    raw[14] = raw[14]! ^ 0x01; // one bit of the ciphertext
    expect(unsealEnv(key, { DB_PASSWORD: SEALED_PREFIX + raw.toString('base64url') })).toMatchObject({ error: expect.stringContaining('DB_PASSWORD') });
    // The same value seals the same (a re-deploy of the same release is the same release); another does not.
    expect(sealSecret(key, 'hunter2')).toBe(sealed);
    expect(sealSecret(key, 'hunter3')).not.toBe(sealed);
  });
});
