// The Docker image runs as an unprivileged user: the appliance must boot, serve and stop cleanly
// without root too. Run as root (as CI does), this drops to `nobody` with setpriv; run as a normal
// user, the other end-to-end files already are this test.
import { chownSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { appliancePorts, cliPath, portsEnv } from '../../bench/harness.js';
import { reapOrphans } from '../../supervisor/index.js';

const isRoot = process.getuid?.() === 0;
// The checkout must be readable by `nobody` (it is under /tmp or /work; not under a 0700 home).
const nobodyCanRun = isRoot && spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(cliPath)})`]).status === 0;

describe('as an unprivileged user', () => {
  it.runIf(isRoot)('boots, serves a request through the proxy, and stops with exit 0', async () => {
    // As root, this test must run: a checkout `nobody` cannot read is a setup error, not a skip.
    expect(nobodyCanRun, `${cliPath} is not readable by nobody: put the checkout where every user can read it (e.g. under /tmp or /srv)`).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'changelens-nobody-'));
    chownSync(dir, 65534, 65534);
    const dataDir = join(dir, 'data');
    const ports = await appliancePorts();
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...portsEnv(ports), CHANGELENS_DATA_DIR: dataDir };
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cliPath, 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!out.includes('"msg":"appliance ready"')) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`not ready (exit ${child.exitCode}): ${err}\n${out.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const res = await fetch(`http://127.0.0.1:${ports.port}/api/data`);
      expect(res.status).toBe(200);
      // Postgres runs as the same unprivileged user: nothing asked for root.
      expect(out).not.toContain('CL_ERR_SERVICE_USER');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('database system is shut down');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await reapOrphans(join(dataDir, 'state', 'pm2'));
    }
  });
});
