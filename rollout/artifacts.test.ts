import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importArtifact, pruneReleaseDirs } from './artifacts.js';

function appDir(root: string, files: Record<string, string>): string {
  mkdirSync(root, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(root, name), text);
  return root;
}

describe('importArtifact', () => {
  it('copies a directory and unpacks a .tar.gz (with or without a top-level folder) into releases/<version>', async () => {
    const work = mkdtempSync(join(tmpdir(), 'artifacts-'));
    const releases = join(work, 'releases');
    const src = appDir(join(work, 'src', 'package'), { 'package.json': '{"main":"app.js"}', 'app.js': '' });
    expect(await importArtifact(src, releases, 'v1')).toBe(join(releases, 'v1'));
    expect(readdirSync(join(releases, 'v1')).sort()).toEqual(['app.js', 'package.json']);
    // npm pack style: everything under package/
    expect(spawnSync('tar', ['-czf', join(work, 'app.tgz'), '-C', join(work, 'src'), 'package']).status).toBe(0);
    expect(await importArtifact(join(work, 'app.tgz'), releases, 'v2')).toBe(join(releases, 'v2'));
    expect(readdirSync(join(releases, 'v2')).sort()).toEqual(['app.js', 'package.json']);
    // flat
    expect(spawnSync('tar', ['-czf', join(work, 'flat.tar.gz'), '-C', src, '.']).status).toBe(0);
    await importArtifact(join(work, 'flat.tar.gz'), releases, 'v3');
    expect(existsSync(join(releases, 'v3', 'app.js'))).toBe(true);
    expect(readdirSync(releases).sort()).toEqual(['v1', 'v2', 'v3']); // no temporary directories left
  });

  it('refuses what cannot run or would escape the release, naming the artifact, and leaves nothing behind', async () => {
    const work = mkdtempSync(join(tmpdir(), 'artifacts-'));
    const releases = join(work, 'releases');
    const noEntry = appDir(join(work, 'empty'), { 'README.md': 'hi' });
    const badMain = appDir(join(work, 'bad'), { 'package.json': '{"main":"missing.js"}' });
    const outside = appDir(join(work, 'outside'), { 'package.json': '{"main":"../escape.js"}' });
    writeFileSync(join(work, 'app.zip'), 'PK');
    writeFileSync(join(work, 'broken.tgz'), 'not gzip');
    // A link out of the release, and a .. path: the same vetting as an upload's.
    const linked = appDir(join(work, 'linked'), { 'package.json': '{"main":"app.js"}', 'app.js': '' });
    symlinkSync('/etc/passwd', join(linked, 'secrets'));
    expect(spawnSync('tar', ['-czf', join(work, 'link.tgz'), '-C', linked, '.']).status).toBe(0);
    expect(spawnSync('tar', ['-czf', join(work, 'climb.tgz'), '-C', work, '--transform', 's,^linked/app.js,../../escape.js,', 'linked/app.js', 'linked/package.json']).status).toBe(0);
    for (const [source, message] of [
      ['relative/path', 'expected an absolute path'],
      [join(work, 'nope'), 'no such file'],
      [noEntry, 'no entry point'],
      [badMain, 'no entry point'],
      [outside, 'outside the artifact'],
      [join(work, 'app.zip'), 'expected a directory or a .tar.gz'],
      [join(work, 'broken.tgz'), 'not a readable .tar.gz'],
      [join(work, 'link.tgz'), 'a link to /etc/passwd, outside the release'],
      [join(work, 'climb.tgz'), 'climbs out with ..'],
    ] as const) {
      await expect(importArtifact(source, releases, 'v1'), source).rejects.toThrow(message);
    }
    expect(existsSync(releases) ? readdirSync(releases) : []).toEqual([]);
  });
});

describe('pruneReleaseDirs', () => {
  it('keeps the newest N and every protected one, removes exactly the rest, ignores temporary entries', () => {
    const releases = mkdtempSync(join(tmpdir(), 'prune-'));
    const names = ['v1', 'v2', 'v3', 'v4', 'v5'];
    names.forEach((name, i) => {
      mkdirSync(join(releases, name));
      const t = new Date(Date.UTC(2026, 0, 1 + i)); // v5 newest
      utimesSync(join(releases, name), t, t);
    });
    mkdirSync(join(releases, '.unpack-v6-1'));
    const removed = pruneReleaseDirs(releases, 2, new Set([join(releases, 'v1')]));
    expect(removed.sort()).toEqual([join(releases, 'v2'), join(releases, 'v3')]);
    expect(readdirSync(releases).sort()).toEqual(['.unpack-v6-1', 'v1', 'v4', 'v5']);
    expect(pruneReleaseDirs(join(releases, 'nope'), 1, new Set())).toEqual([]);
  });
});
