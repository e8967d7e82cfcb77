import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveArtifactEntry, validateReleaseEnv } from './releases.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function artifact(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'changelens-artifact-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('an artifact\'s worker (package.json changelens.worker)', () => {
  it('is the named script with its readiness path (default /readyz); none when not named', () => {
    const dir = artifact({ 'server.js': '', 'jobs/worker.js': '', 'package.json': JSON.stringify({ changelens: { worker: 'jobs/worker.js', workerReadyPath: '/up' } }) });
    expect(resolveArtifactEntry(dir)).toEqual({ script: join(dir, 'server.js'), readyPath: '/readyz', worker: { script: join(dir, 'jobs/worker.js'), readyPath: '/up' } });
    const plain = artifact({ 'server.js': '', 'package.json': JSON.stringify({ changelens: { worker: 'worker.js' } }), 'worker.js': '' });
    expect(resolveArtifactEntry(plain)).toMatchObject({ worker: { script: join(plain, 'worker.js'), readyPath: '/readyz' } });
    expect(resolveArtifactEntry(artifact({ 'server.js': '' }))).toEqual({ script: expect.stringMatching(/server\.js$/), readyPath: '/readyz' });
  });

  it('refuses a worker outside the artifact, missing, or a readiness path that is not a path, naming the field', () => {
    for (const worker of ['../worker.js', 'missing.js', 42, '/etc/passwd']) {
      const dir = artifact({ 'server.js': '', 'package.json': JSON.stringify({ changelens: { worker } }) });
      expect(resolveArtifactEntry(dir)).toEqual({ error: `artifact ${dir}: package.json changelens.worker: expected a script inside the artifact` });
    }
    const dir = artifact({ 'server.js': '', 'w.js': '', 'package.json': JSON.stringify({ changelens: { worker: 'w.js', workerReadyPath: 'up' } }) });
    expect(resolveArtifactEntry(dir)).toEqual({ error: `artifact ${dir}: package.json changelens.workerReadyPath: expected a path starting with /` });
  });
});

describe('a release\'s env', () => {
  it('may carry the worker\'s regressions from birth, validated like the API\'s', () => {
    expect(validateReleaseEnv({ CHANGELENS_WORKER_REGRESSION: 'errors:0.2' })).toEqual({ env: { CHANGELENS_WORKER_REGRESSION: 'errors:0.2' } });
    expect(validateReleaseEnv({ CHANGELENS_WORKER_REGRESSION: 'errors:2' })).toEqual({ error: 'env.CHANGELENS_WORKER_REGRESSION: "errors:2": errors intensity: expected a number 0.0001-1 (share of attempts failing), got 2' });
    expect(validateReleaseEnv({ CHANGELENS_WORKER_PORT: '1' })).toMatchObject({ error: expect.stringMatching(/^env\.CHANGELENS_WORKER_PORT: set by the appliance/) });
  });
});
