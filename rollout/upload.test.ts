import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { receiveArtifact, uploadedArtifact } from './upload.js';

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** One raw ustar entry, any type, mode and link: what a hostile archive can hold, whatever tar tools allow. */
function rawEntry(name: string, o: { type?: string; mode?: number; body?: Buffer | string; linkname?: string } = {}): Buffer {
  const body = Buffer.from(o.body ?? '');
  const header = Buffer.alloc(512);
  const octal = (value: number, offset: number, length: number): void => { header.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'latin1'); };
  header.write(name, 0, 100, 'latin1');
  octal(o.mode ?? 0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(body.length, 124, 12);
  octal(1_700_000_000, 136, 12);
  header.fill(' ', 148, 156);
  header.write(o.type ?? '0', 156, 1, 'latin1');
  header.write(o.linkname ?? '', 157, 100, 'latin1');
  header.write('ustar\0' + '00', 257, 8, 'latin1');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return Buffer.concat([header, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/** A .tar.gz of raw entries, with an app's package.json and server.js first. */
function rawTarball(work: string, name: string, entries: Buffer[]): string {
  const file = join(work, name);
  writeFileSync(file, gzipSync(Buffer.concat([rawEntry('package.json', { body: '{"main":"server.js"}' }), rawEntry('server.js'), ...entries, Buffer.alloc(1024)])));
  return file;
}

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
  const upload = (file: string, version = 'v1', options: { sha256?: string; maxBytes?: number; unpackLimits?: { maxBytes: number; maxEntries: number } } = {}) =>
    receiveArtifact(createReadStream(file), { releasesDir: releases, version, sha256: options.sha256 ?? sha(file), maxBytes: options.maxBytes ?? 10_000_000, ...(options.unpackLimits ? { unpackLimits: options.unpackLimits } : {}) });
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

  it('refuses a corpus of hostile archives, each naming its entry, leaving nothing behind', async () => {
    const { work, releases, upload, leftovers } = setup();
    const cases: Array<[string, Buffer[], RegExp]> = [
      // The chain that once overwrote state/routing.json: each link looks harmless alone.
      ['chain', [rawEntry('l2', { type: '2', linkname: '.' }), rawEntry('l1', { type: '2', linkname: 'l2/..' })], /l1: a link to l2\/\.\., through the link l2/],
      ['link to a link', [rawEntry('b', { type: '2', linkname: 'server.js' }), rawEntry('a', { type: '2', linkname: 'b' })], /a: a link to b, another link \(no chains of links\)/],
      ['through a link', [rawEntry('sub/', { type: '5', mode: 0o755 }), rawEntry('d', { type: '2', linkname: 'sub' }), rawEntry('d/evil.js', { body: 'x' })], /d\/evil\.js: written through the link d/],
      ['link declared after', [rawEntry('lib/', { type: '5', mode: 0o755 }), rawEntry('lib/a.js', { body: 'x' }), rawEntry('lib', { type: '2', linkname: '.' })], /lib\/a\.js: written through the link lib/],
      ['link up and out', [rawEntry('deep/x', { type: '2', linkname: '../../outside' })], /deep\/x: a link to \.\.\/\.\.\/outside, outside the release/],
      ['hard link out', [rawEntry('h', { type: '1', linkname: '../../etc/passwd' })], /h: a hard link to \.\.\/\.\.\/etc\/passwd, outside the release/],
      ['hard link to no file', [rawEntry('dir/', { type: '5', mode: 0o755 }), rawEntry('h', { type: '1', linkname: 'dir' })], /h: a hard link to dir, which is not a file earlier in the release/],
      ['hard link before its file', [rawEntry('h', { type: '1', linkname: 'later.js' }), rawEntry('later.js', { body: 'x' })], /h: a hard link to later\.js, which is not a file earlier/],
      ['backslash', [rawEntry('d\\e\\l', { type: '2', linkname: '../x' })], /a backslash in a path/],
      ['absolute', [rawEntry('/etc/cron.d/x', { body: 'x' })], /\/etc\/cron\.d\/x: an absolute path/],
      ['dot dot', [rawEntry('a/../../x', { body: 'x' })], /a\/\.\.\/\.\.\/x: a path that climbs out with \.\./],
      ['device', [rawEntry('null', { type: '3' })], /null: a CharacterDevice entry is not allowed/],
      ['fifo', [rawEntry('pipe', { type: '6' })], /pipe: a FIFO entry is not allowed/],
      ['the marker', [rawEntry('.changelens-artifact.json', { type: '2', linkname: 'server.js' })], /\.changelens-artifact\.json: a name the appliance writes itself/],
    ];
    for (const [name, entries, message] of cases) await expect(upload(rawTarball(work, `${name.replace(/ /g, '-')}.tgz`, entries)), name).rejects.toThrow(message);
    // A bomb: 2 MB of zeros in a few kB; and too many entries. Counted while streaming.
    const bomb = rawTarball(work, 'bomb.tgz', [rawEntry('zeros', { body: Buffer.alloc(2 * 1024 * 1024) })]);
    expect(statSync(bomb).size).toBeLessThan(10_000);
    await expect(upload(bomb, 'v1', { unpackLimits: { maxBytes: 1024 * 1024, maxEntries: 100 } })).rejects.toThrow(/refused, nothing was unpacked: more than 1 MB unpacked \(at zeros\)/);
    // A zero-filled file first: past node-tar's own 1000:1 guard while vetting, the archive is refused (never passed on a partial list).
    const ratio = join(work, 'ratio.tgz');
    writeFileSync(ratio, gzipSync(Buffer.concat([rawEntry('zeros', { body: Buffer.alloc(8 * 1024 * 1024) }), rawEntry('evil', { type: '2', linkname: '../../etc' }), Buffer.alloc(1024)]), { level: 9 }));
    await expect(upload(ratio)).rejects.toThrow(/not a readable \.tar\.gz/);
    // Truncated: refused, not half-vetted.
    const good = readFileSync(rawTarball(work, 'whole.tgz', [rawEntry('lib/a.js', { body: 'x'.repeat(100_000) })]));
    writeFileSync(join(work, 'truncated.tgz'), good.subarray(0, Math.floor(good.length / 2)));
    await expect(upload(join(work, 'truncated.tgz'))).rejects.toThrow(/not a readable \.tar\.gz/);
    const many = rawTarball(work, 'many.tgz', Array.from({ length: 30 }, (_, i) => rawEntry(`f${i}.js`)));
    await expect(upload(many, 'v1', { unpackLimits: { maxBytes: 1024 * 1024, maxEntries: 20 } })).rejects.toThrow(/more than 20 entries \(at f18\.js\)/);
    expect(existsSync(join(releases, 'v1'))).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('keeps what is fine, without setuid, setgid, sticky or world-write bits', async () => {
    const { work, releases, upload } = setup();
    const file = rawTarball(work, 'modes.tgz', [
      rawEntry('bin/', { type: '5', mode: 0o1777 }),
      rawEntry('bin/tool', { mode: 0o4755, body: '#!/bin/sh' }),
      rawEntry('shared.js', { mode: 0o2666 }),
      rawEntry('private.js', { mode: 0o600 }),
      rawEntry('closed/', { type: '5', mode: 0o700 }),
      rawEntry('closed/inner.js', { mode: 0o640 }),
      rawEntry('bin/alias', { type: '2', linkname: 'tool' }),
      rawEntry('copy.js', { type: '1', linkname: 'server.js' }),
    ]);
    await upload(file);
    const mode = (p: string): number => statSync(join(releases, 'v1', p)).mode & 0o7777;
    for (const p of ['bin', 'bin/tool', 'shared.js']) expect((mode(p) & 0o7002).toString(8), p).toBe('0');
    // What an app needs stays: the tool runs, everyone reads.
    expect(mode('bin/tool') & 0o111).toBe(0o111);
    expect(mode('shared.js') & 0o444).toBe(0o444);
    // The release's user owns none of it: it reads every file and enters every folder as "others".
    expect(mode('private.js')).toBe(0o604);
    expect(mode('closed')).toBe(0o705);
    expect(mode('closed/inner.js')).toBe(0o644);
    expect(lstatSync(join(releases, 'v1', 'bin/alias')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(releases, 'v1', 'bin/alias'), 'utf8')).toBe('#!/bin/sh');
  });
});
