// The programs a backup runs (pg_dump, pg_restore, redis-server) and the file checks it makes,
// each with its failure turned into one readable line.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { delimiter, join } from 'node:path';

/** Nice value of background tools: below every service, above nothing that matters. */
const BACKGROUND_NICE = 10;

/** Runs a program to completion; rejects with its last stderr lines when it fails. */
export function runTool(bin: string, args: readonly string[], options: { env?: Record<string, string>; timeoutMs?: number; background?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    // Background work (a scheduled dump) yields the CPU to the services answering requests.
    if (options.background && child.pid !== undefined) toBackground(child.pid);
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => { err = (err + c).slice(-4_000); });
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`${bin}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const why = err.trim().split('\n').slice(-3).join(' / ') || (signal ? `killed by ${signal}` : `exit code ${code}`);
      reject(new Error(`${bin.split('/').pop()} failed: ${why}`));
    });
  });
}

/** A Postgres client program: from the server's own bin dir when we run the server, else PATH. */
/**
 * Moves a process to the background: SCHED_IDLE (it runs only when a CPU would otherwise idle, so a
 * request never waits behind it) and the idle I/O class; where that is not possible, nice 10.
 */
export function toBackground(pid: number): void {
  const idle = spawnSync('chrt', ['--idle', '--pid', '0', String(pid)], { stdio: 'ignore' });
  spawnSync('ionice', ['-c', '3', '-p', String(pid)], { stdio: 'ignore' });
  if (idle.status === 0) return;
  try {
    setPriority(pid, BACKGROUND_NICE);
  } catch {
    // Not permitted here: it runs at normal priority.
  }
}

export function pgTool(name: 'pg_dump' | 'pg_restore', pgBinDir: string | undefined): string {
  if (pgBinDir && existsSync(join(pgBinDir, name))) return join(pgBinDir, name);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir && existsSync(join(dir, name))) return join(dir, name);
  return name;
}

/**
 * A libpq connection: the URL without its password (argv is visible to every user of the box)
 * and the password in PGPASSWORD.
 */
export function libpqTarget(url: string, database?: string): { dbname: string; env: Record<string, string> } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  if (database !== undefined) u.pathname = `/${database}`;
  return { dbname: u.toString(), env: password ? { PGPASSWORD: password } : {} };
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
