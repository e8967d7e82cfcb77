import { describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { detectPlatform, judgeMount } from './platform.js';

// Lines as /proc/self/mountinfo has them (one per mount).
const line = (id: number, mountPoint: string, fsType: string, optional = 'shared:1') => `${id} 1 0:${id} / ${mountPoint} rw,relatime ${optional} - ${fsType} src rw`;

describe('judgeMount', () => {
  const container = [line(1, '/', 'overlay'), line(2, '/proc', 'proc', ''), line(3, '/data', 'ext4'), line(4, '/data/backups', 'fuse.cosfs'), line(5, '/mnt/my\\040disk', 'xfs')].join('\n');

  it('picks the longest mount point holding the path', () => {
    expect(judgeMount(container, '/data/postgres')).toEqual({ mountPoint: '/data', fsType: 'ext4', durable: true });
    expect(judgeMount(container, '/data/backups/x')).toEqual({ mountPoint: '/data/backups', fsType: 'fuse.cosfs', durable: false });
    expect(judgeMount(container, '/data')).toMatchObject({ mountPoint: '/data', durable: true });
  });

  it('treats the container\'s root filesystem as not durable, whatever its type', () => {
    expect(judgeMount(container, '/srv/data')).toEqual({ mountPoint: '/', fsType: 'overlay', durable: false });
    expect(judgeMount(line(1, '/', 'ext4'), '/data')).toMatchObject({ mountPoint: '/', durable: false });
  });

  it('does not confuse a sibling with the same prefix, and unescapes mount points', () => {
    expect(judgeMount(container, '/database')).toMatchObject({ mountPoint: '/' });
    expect(judgeMount(container, '/mnt/my disk/pg')).toEqual({ mountPoint: '/mnt/my disk', fsType: 'xfs', durable: true });
  });

  it('refuses object-storage, network and memory filesystems', () => {
    for (const fs of ['tmpfs', 'fuse.gcsfuse', 'fuse.cosfs', 'overlay', '9p']) {
      expect(judgeMount([line(1, '/', 'overlay'), line(2, '/data', fs)].join('\n'), '/data/x').durable, fs).toBe(false);
    }
  });
});

describe('detectPlatform', () => {
  it('recognises Cloud Run by K_SERVICE, CloudBase by CHANGELENS_PLATFORM, and lets an explicit platform win', () => {
    expect(detectPlatform(loadConfig({ env: { K_SERVICE: 'changelens' } }))).toBe('cloudrun');
    expect(detectPlatform(loadConfig({ env: { CHANGELENS_PLATFORM: 'cloudbase' } }))).toBe('cloudbase');
    expect(detectPlatform(loadConfig({ env: { K_SERVICE: 'changelens', CHANGELENS_PLATFORM: 'bare' } }))).toBe('other');
    expect(detectPlatform(loadConfig({ env: {} }))).toBe('other');
  });
});
