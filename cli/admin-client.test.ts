// The CLI's admin client warns before a token crosses a network in clear text.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { adminClient } from './admin-client.js';

const config = loadConfig({ env: { CHANGELENS_ADMIN_TOKEN: 'Adm1n-T0ken_of-forty.characters~xyzABCDE' } });

describe('adminClient over plain http', () => {
  afterEach(() => vi.restoreAllMocks());

  it('warns (once) before sending the token to a host that is not this one; not for loopback', async () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => { written.push(String(chunk)); return true; });
    // Nothing answers on loopback's port 9: the call fails, after the warning or not.
    await expect(adminClient(config, { url: 'http://127.0.0.1:9', timeoutMs: 2_000 }).get('/api/status')).rejects.toThrow();
    expect(written.filter((w) => w.startsWith('warning:'))).toEqual([]);
    // TEST-NET (RFC 5737): never routed; the warning comes before any attempt.
    const remote = adminClient(config, { url: 'http://192.0.2.1:9', timeoutMs: 500 });
    await expect(remote.get('/api/status')).rejects.toThrow();
    await expect(remote.get('/api/status')).rejects.toThrow();
    expect(written.filter((w) => w.startsWith('warning:'))).toEqual([expect.stringContaining('sending the admin token to 192.0.2.1:9 over plain http')]);
  });
});
