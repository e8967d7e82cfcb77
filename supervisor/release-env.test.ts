// A release's settings as the supervisor starts a colour with them: sealed secrets open here only.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { releaseSecretsKey, sealSecret } from '../lib/contracts/release-secrets.js';
import { releaseEnv } from './release-env.js';

const key = releaseSecretsKey('backup-key-0123456789abcdef');
const config = loadConfig({ env: {} });

describe('releaseEnv', () => {
  it('opens sealed secrets for the colour, leaves plain settings as they are', () => {
    const query = new URLSearchParams([['set', `DB_PASSWORD=${sealSecret(key, 's3cr=t;')}`], ['set', 'FEATURE=on']]).toString();
    expect(releaseEnv(config, query, key)).toMatchObject({ DB_PASSWORD: 's3cr=t;', FEATURE: 'on' });
  });

  it('refuses a secret sealed with another key, naming it', () => {
    const query = new URLSearchParams([['set', `DB_PASSWORD=${sealSecret(releaseSecretsKey('another-backup-key-0123456789'), 'x')}`]]).toString();
    expect(() => releaseEnv(config, query, key)).toThrow(/--set\.DB_PASSWORD: a sealed secret this appliance cannot open/);
  });
});
