import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importArtifact } from './artifacts.js';

function appDir(root: string, files: Record<string, string>): string {
  mkdirSync(root, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(root, name), text);
  return root;
}

describe('importArtifact', () => {
  it('copies a directory and unpacks a .tar.gz (with or without a top-level folder) into releases/<version>', () => {
    const work = mkdtempSync(join(tmpdir(), 'artifacts-'));
    const releases = join(work, 'releases');
    const src = appDir(join(work, 'src', 'package'), { 'package.json': '{"main":"app.js"}', 'app.js': '' });
    expect(importArtifact(src, releases, 'v1')).toBe(join(releases, 'v1'));
    expect(readdirSync(join(releases, 'v1')).sort()).toEqual(['app.js', 'package.json']);
    // npm pack style: everything under package/
    expect(spawnSync('tar', ['-czf', join(work, 'app.tgz'), '-C', join(work, 'src'), 'package']).status).toBe(0);
    expect(importArtifact(join(work, 'app.tgz'), releases, 'v2')).toBe(join(releases, 'v2'));
    expect(readdirSync(join(releases, 'v2')).sort()).toEqual(['app.js', 'package.json']);
    // flat
    expect(spawnSync('tar', ['-czf', join(work, 'flat.tar.gz'), '-C', src, '.']).status).toBe(0);
    importArtifact(join(work, 'flat.tar.gz'), releases, 'v3');
    expect(existsSync(join(releases, 'v3', 'app.js'))).toBe(true);
    expect(readdirSync(releases).sort()).toEqual(['v1', 'v2', 'v3']); // no temporary directories left
  });

  it('refuses what cannot run, naming the artifact, and leaves nothing behind', () => {
    const work = mkdtempSync(join(tmpdir(), 'artifacts-'));
    const releases = join(work, 'releases');
    const noEntry = appDir(join(work, 'empty'), { 'README.md': 'hi' });
    const badMain = appDir(join(work, 'bad'), { 'package.json': '{"main":"missing.js"}' });
    const outside = appDir(join(work, 'outside'), { 'package.json': '{"main":"../escape.js"}' });
    writeFileSync(join(work, 'app.zip'), 'PK');
    writeFileSync(join(work, 'broken.tgz'), 'not gzip');
    for (const [source, message] of [
      ['relative/path', 'expected an absolute path'],
      [join(work, 'nope'), 'no such file'],
      [noEntry, 'no entry point'],
      [badMain, 'no entry point'],
      [outside, 'outside the artifact'],
      [join(work, 'app.zip'), 'expected a directory or a .tar.gz'],
      [join(work, 'broken.tgz'), 'tar could not unpack it'],
    ] as const) {
      expect(() => importArtifact(source, releases, 'v1'), source).toThrow(message);
    }
    expect(existsSync(releases) ? readdirSync(releases) : []).toEqual([]);
  });
});
