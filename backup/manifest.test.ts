// Manifests are signed with a key derived from the backup key: any change, or another key, is caught.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backupKey } from './encryption.js';
import { manifestAuthentic, signManifest, type Manifest } from './manifest.js';

const key = backupKey('the-right-key-0123456789');
const manifest = (): Manifest => ({
  schemaVersion: 1, id: '20261130-020000-pg', kinds: ['postgres'], reason: 'scheduled', startedAt: '2026-11-30T02:00:00.000Z', finishedAt: '2026-11-30T02:00:03.000Z', durationMs: 3000,
  files: [{ name: 'postgres.dump', kind: 'postgres', bytes: 1234, sha256: 'a'.repeat(64) }], servers: { postgres: '16.4' },
  database: { name: 'changelens', tables: ['public.items'], migrations: [1, 2, 3, 4] },
});

describe('manifest signatures', () => {
  it('a signed manifest is authentic, whatever the order of its keys and the listing\'s extra fields', () => {
    const m = manifest();
    signManifest(m, key.macKey);
    const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(m).reverse()))) as Manifest;
    expect(manifestAuthentic(reordered, key.macKey)).toBe(true);
    expect(manifestAuthentic({ ...m, totalBytes: 1234, verification: null, offsite: null }, key.macKey)).toBe(true);
  });

  it('any changed value, a missing signature or another key is refused', () => {
    fc.assert(fc.property(fc.constantFrom('id', 'reason', 'startedAt', 'sha256', 'bytes', 'tables', 'kinds'), (what) => {
      const m = manifest();
      signManifest(m, key.macKey);
      if (what === 'sha256') m.files[0]!.sha256 = 'b'.repeat(64);
      else if (what === 'bytes') m.files[0]!.bytes += 1;
      else if (what === 'tables') m.database!.tables.push('public.planted');
      else if (what === 'kinds') m.kinds = ['postgres', 'redis'];
      else (m as unknown as Record<string, string>)[what] += 'x';
      expect(manifestAuthentic(m, key.macKey)).toBe(false);
    }));
    const m = manifest();
    expect(manifestAuthentic(m, key.macKey)).toBe(false);
    signManifest(m, key.macKey);
    expect(manifestAuthentic(m, backupKey('another-key-0123456789ab').macKey)).toBe(false);
  });

  it('key ids are salted: not the plain hash of the key, and both are kept for older manifests', () => {
    expect(key.id).not.toBe(key.legacyId);
    expect(key.id).toMatch(/^[0-9a-f]{16}$/);
  });
});
