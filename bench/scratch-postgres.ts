// A throwaway PostgreSQL for tests and benchmarks that need the real database but not a whole appliance: the
// project's own initdb and migrations (supervisor/), the server binary the appliance would run,
// on a free loopback port, as the service user when we are root. stop() removes everything.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './harness.js';
import { loadConfig } from '../lib/config.js';
import { migrationsDir } from '../lib/package-root.js';
import { dataPaths } from '../lib/paths.js';
import { embeddedUrl } from '../supervisor/child-env.js';
import { initPostgres, PG_DATABASE, resolveBinaries, resolveServiceUser } from '../supervisor/first-boot.js';
import { applyMigrations, ensureDatabase, readMigrations } from '../supervisor/migrations.js';
import { probePostgres } from '../supervisor/probes.js';

export interface ScratchPostgres {
  /** Our database, migrated. */
  url: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export async function startScratchPostgres(): Promise<ScratchPostgres> {
  // Where the binaries are and who runs them, as the appliance would read them; nothing else of this env.
  const env: Record<string, string> = {};
  for (const k of ['CHANGELENS_PG_BIN_DIR', 'CHANGELENS_SERVICE_USER']) if (process.env[k]) env[k] = process.env[k]!;
  const config = loadConfig({ env });
  const user = resolveServiceUser(config);
  const bin = resolveBinaries(config, { postgres: true, redis: false });
  const root = mkdtempSync(join(tmpdir(), 'changelens-pg-'));
  let server: ReturnType<typeof spawn> | undefined;
  let exited: Promise<void> = Promise.resolve();
  const stop = async (): Promise<void> => {
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGINT'); // Postgres's fast shutdown
      const timer = setTimeout(() => server!.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    chmodSync(root, 0o711); // the service user reaches its folder through it
    const paths = dataPaths(root);
    const password = 'scratch-password';
    await initPostgres(paths, bin.initdb, password, user);
    const [port] = await freePorts(1);
    const child = spawn(bin.postgres, ['-D', paths.postgres, '-c', `port=${port}`, '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'jit=off', '-c', 'fsync=off'], {
      ...(user ? { uid: user.uid, gid: user.gid } : {}), cwd: '/', stdio: ['ignore', 'ignore', 'pipe'],
    });
    server = child;
    let output = '';
    child.stderr!.on('data', (b: Buffer) => { output = (output + b.toString()).slice(-4000); });
    exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (err) => { output += String(err); resolve(); });
    });
    const admin = embeddedUrl(password, port!, 'postgres');
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await probePostgres(admin)).ok) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) throw new Error(`scratch Postgres did not start: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await ensureDatabase(admin, PG_DATABASE);
    const url = embeddedUrl(password, port!, PG_DATABASE);
    await applyMigrations(url, readMigrations(migrationsDir));
    return { url, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
