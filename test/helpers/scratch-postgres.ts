// A throwaway PostgreSQL for tests that need the real database but not a whole appliance: the
// project's own initdb and migrations (supervisor/), the server binary the appliance would run,
// on a free loopback port, as the service user when we are root. stop() removes everything.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../bench/harness.js';
import { loadConfig } from '../../lib/config.js';
import { dataPaths } from '../../lib/paths.js';
import { migrationsDir } from '../../lib/package-root.js';
import { embeddedUrl } from '../../supervisor/child-env.js';
import { initPostgres, PG_DATABASE, resolveBinaries, resolveServiceUser } from '../../supervisor/first-boot.js';
import { applyMigrations, ensureDatabase, readMigrations } from '../../supervisor/migrations.js';
import { probePostgres } from '../../supervisor/probes.js';

export interface ScratchPostgres {
  /** Our database, migrated. */
  url: string;
  stop(): Promise<void>;
}

export async function startScratchPostgres(): Promise<ScratchPostgres> {
  const config = loadConfig({ env: {} });
  const user = resolveServiceUser(config);
  const bin = resolveBinaries(config, { postgres: true, redis: false });
  const root = mkdtempSync(join(tmpdir(), 'changelens-pg-'));
  chmodSync(root, 0o711); // the service user reaches its folder through it
  const paths = dataPaths(root);
  const password = 'scratch-password';
  await initPostgres(paths, bin.initdb, password, user);
  const [port] = await freePorts(1);
  const server = spawn(bin.postgres, ['-D', paths.postgres, '-c', `port=${port}`, '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'jit=off', '-c', 'fsync=off'], {
    ...(user ? { uid: user.uid, gid: user.gid } : {}), cwd: '/', stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  server.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const stop = async () => {
    if (server.exitCode === null) server.kill('SIGINT'); // Postgres's fast shutdown
    await exited;
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const admin = embeddedUrl(password, port!, 'postgres');
    for (let i = 0; !(await probePostgres(admin)).ok; i++) {
      if (server.exitCode !== null || i > 300) throw new Error(`scratch Postgres did not start: ${stderr}`);
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
