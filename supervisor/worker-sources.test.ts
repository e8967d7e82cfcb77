import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { workerCodeDirs } from '../proxy/supervisor-link.js';
import { readWorkerSources, workerSourceFor, writeWorkerSources } from './worker-sources.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
const scratch = (): string => { const d = mkdtempSync(join(tmpdir(), 'changelens-workers-')); dirs.push(d); return d; };

describe('which worker code a colour runs', () => {
  it('a release\'s own worker; the built-in one for the built-in release; else the stable colour\'s, refused when that is gone', () => {
    const releases = scratch();
    const script = join(releases, 'v1', 'jobs', 'worker.js');
    mkdirSync(join(releases, 'v1', 'jobs'), { recursive: true });
    writeFileSync(script, '');
    const own = { script, readyPath: '/readyz' };
    expect(workerSourceFor(undefined, own)).toBe('builtin');
    expect(workerSourceFor({ script: join(releases, 'v2', 'server.js'), readyPath: '/readyz', worker: own }, 'builtin')).toEqual(own);
    expect(workerSourceFor({ script: join(releases, 'v2', 'server.js'), readyPath: '/readyz' }, own)).toEqual(own);
    expect(workerSourceFor({ script: join(releases, 'v2', 'server.js'), readyPath: '/readyz' }, 'builtin')).toBe('builtin');
    expect(workerSourceFor({ script: join(releases, 'v2', 'server.js'), readyPath: '/readyz' }, undefined)).toBe('builtin');
    rmSync(join(releases, 'v1'), { recursive: true });
    expect(() => workerSourceFor({ script: join(releases, 'v2', 'server.js'), readyPath: '/readyz' }, own)).toThrow(/the worker this release inherits .* is gone/);
  });

  it('is kept in state/workers.json, and the release directories it names are kept from pruning whatever depth the script is at', () => {
    const state = scratch();
    const releases = join(state, 'releases');
    const path = join(state, 'workers.json');
    expect(readWorkerSources(path)).toEqual({});
    writeWorkerSources(path, { blue: 'builtin', green: { script: join(releases, 'v7', 'jobs', 'worker.js'), readyPath: '/up' } });
    expect(readWorkerSources(path)).toEqual({ blue: 'builtin', green: { script: join(releases, 'v7', 'jobs', 'worker.js'), readyPath: '/up' } });
    expect(workerCodeDirs(path, releases)).toEqual([join(releases, 'v7')]);
    writeFileSync(path, '{"blue": {"script": 3}, "green": "nonsense"}');
    expect(readWorkerSources(path)).toEqual({});
  });
});
