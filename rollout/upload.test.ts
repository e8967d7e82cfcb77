import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { receiveArtifact, uploadedArtifact } from './upload.js';

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** tar -czf with GNU tar's own flags (-P keeps absolute paths and ..). */
function tarball(work: string, name: string, args: string[], cwd = work): string {
  const file = join(work, name);
  const r = spawnSync('tar', ['-czf', file, ...args], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return file;
}

function setup() {
  const work = mkdtempSync(join(tmpdir(), 'upload-'));
  const releases = join(work, 'data', 'releases');
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{"main":"server.js"}');
  writeFileSync(join(app, 'server.js'), '');
  const upload = (file: string, version = 'v1', options: { sha256?: string; maxBytes?: number } = {}) =>
    receiveArtifact(createReadStream(file), { releasesDir: releases, version, sha256: options.sha256 ?? sha(file), maxBytes: options.maxBytes ?? 10_000_000 });
  /** Nothing but finished releases in releases/, and nothing written outside it. */
  const leftovers = () => (existsSync(releases) ? readdirSync(releases).filter((n) => n.startsWith('.')) : []);
  return { work, releases, app, upload, leftovers };
}

describe('receiveArtifact', () => {
  it('stores a release under releases/<version>, accepts the same content again, refuses other content for that version', async () => {
    const { work, releases, upload, leftovers } = setup();
    const good = tarball(work, 'good.tgz', ['package.json', 'server.js'], join(work, 'app'));
    const first = await upload(good);
    expect(first).toMatchObject({ version: 'v1', dir: join(releases, 'v1'), unchanged: false, sha256: sha(good) });
    expect(readdirSync(join(releases, 'v1')).sort()).toEqual(['.changelens-artifact.json', 'package.json', 'server.js']);
    expect(uploadedArtifact(releases, 'v1')).toBe(join(releases, 'v1'));
    expect((await upload(good)).unchanged).toBe(true);
    writeFileSync(join(work, 'app', 'server.js'), '// changed');
    const other = tarball(work, 'other.tgz', ['package.json', 'server.js'], join(work, 'app'));
    await expect(upload(other)).rejects.toThrow(/release v1 already exists with a different artifact/);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a wrong sha256, an oversized body and a file that is not a tarball, writing nothing', async () => {
    const { work, releases, upload, leftovers } = setup();
    const good = tarball(work, 'good.tgz', ['package.json', 'server.js'], join(work, 'app'));
    await expect(upload(good, 'v1', { sha256: 'a'.repeat(64) })).rejects.toThrow(/sha256 .* is not the a{64} that was sent/);
    await expect(upload(good, 'v1', { maxBytes: 10 })).rejects.toThrow(/larger than the limit of 10 bytes/);
    writeFileSync(join(work, 'junk.tgz'), 'not a tarball at all');
    await expect(upload(join(work, 'junk.tgz'))).rejects.toThrow(/not a readable .tar.gz/);
    expect(existsSync(join(releases, 'v1'))).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('refuses zip-slip: .. entries, absolute paths, links leaving the release, devices; nothing lands outside', async () => {
    const { work, releases, upload, leftovers } = setup();
    const app = join(work, 'app');
    const cases: Array<[string, RegExp]> = [];
    cases.push([tarball(work, 'dotdot.tgz', ['-P', 'package.json', 'server.js', '../app/server.js'], app), /climbs out with \.\./]);
    cases.push([tarball(work, 'absolute.tgz', ['-P', 'package.json', 'server.js', join(app, 'server.js')], app), /an absolute path/]);
    symlinkSync('../../../../etc/passwd', join(app, 'escape'));
    cases.push([tarball(work, 'symlink.tgz', ['package.json', 'server.js', 'escape'], app), /escape: a link to \.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd, outside the release/]);
    const dev = join(work, 'devapp');
    mkdirSync(dev);
    writeFileSync(join(dev, 'server.js'), '');
    if (spawnSync('mknod', [join(dev, 'null'), 'c', '1', '3']).status === 0) {
      cases.push([tarball(work, 'device.tgz', ['server.js', 'null'], dev), /a CharacterDevice entry is not allowed/]);
    }
    for (const [file, message] of cases) {
      await expect(upload(file), file).rejects.toThrow(message);
    }
    expect(existsSync(join(releases, 'v1'))).toBe(false);
    expect(leftovers()).toEqual([]);
    expect(existsSync(join(work, 'data', 'app'))).toBe(false);
  });

  it('allows a link that stays inside the release', async () => {
    const { work, releases, upload } = setup();
    symlinkSync('server.js', join(work, 'app', 'index.js'));
    const file = tarball(work, 'inner.tgz', ['package.json', 'server.js', 'index.js'], join(work, 'app'));
    await upload(file);
    expect(readFileSync(join(releases, 'v1', 'index.js'), 'utf8')).toBe('');
  });
});
