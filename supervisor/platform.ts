// Where the appliance runs, and whether its data dir survives the instance. On Cloud Run and
// CloudBase Run the container's own filesystem vanishes with the instance (Cloud Run keeps it in
// memory; CloudBase's "persistent storage" is an object-storage mount, unsafe for Postgres), so
// embedded Postgres refuses to start there without a real volume — unless the operator asks for
// a demo that may lose its data (CHANGELENS_EPHEMERAL=1).
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../lib/config.js';
import { CL_ERR_EPHEMERAL_DATA } from '../lib/errors.js';

export type DetectedPlatform = 'cloudrun' | 'cloudbase' | 'other';

/** Filesystems on block storage that outlive a process and honour fsync: what Postgres needs. */
const DURABLE_FILESYSTEMS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'zfs', 'f2fs']);

export function detectPlatform(config: Config): DetectedPlatform {
  if (config.platform === 'cloudrun' || (config.platform === 'auto' && config.cloudRunService !== undefined)) return 'cloudrun';
  if (config.platform === 'cloudbase') return 'cloudbase';
  return 'other';
}

export interface MountJudgement {
  mountPoint: string;
  fsType: string;
  durable: boolean;
}

/**
 * The mount that holds `path` (the longest mount point that is a prefix of it) and whether it is
 * durable: a block filesystem mounted on purpose, not the container's root.
 */
export function judgeMount(mountinfo: string, path: string): MountJudgement {
  let best: { mountPoint: string; fsType: string } = { mountPoint: '/', fsType: 'unknown' };
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields] - fstype source superoptions
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = unescapeMount(left.split(' ')[4] ?? '');
    const fsType = right.split(' ')[0] ?? 'unknown';
    const contains = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    if (contains && mountPoint.length >= best.mountPoint.length) best = { mountPoint, fsType };
  }
  return { ...best, durable: best.mountPoint !== '/' && DURABLE_FILESYSTEMS.has(best.fsType) };
}

/** Refuses embedded Postgres on a cloud container platform whose data dir would not survive. */
export function assertDataSurvives(config: Config, dataDir: string, embeddedPostgres: boolean): MountJudgement | undefined {
  const platform = detectPlatform(config);
  if (platform === 'other' || !embeddedPostgres) return undefined;
  const mount = judgeMount(readFileSync('/proc/self/mountinfo', 'utf8'), existingRealpath(dataDir));
  if (mount.durable || config.ephemeral === '1') return mount;
  const name = platform === 'cloudrun' ? 'Cloud Run' : 'CloudBase Run';
  const where = mount.mountPoint === '/'
    ? `${dataDir} is on the container's own filesystem, which vanishes with the instance`
    : `${dataDir} is on ${mount.fsType} mounted at ${mount.mountPoint}, not a durable block volume`;
  throw new CL_ERR_EPHEMERAL_DATA(name, where);
}

function existingRealpath(path: string): string {
  for (let p = path; ; p = dirname(p)) {
    if (existsSync(p)) return realpathSync(p) + path.slice(p.length);
    if (dirname(p) === p) return path;
  }
}

function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
