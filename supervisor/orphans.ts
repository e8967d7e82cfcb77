// Processes left running by a supervisor that died without stopping them (kill -9, OOM): pm2's
// children are detached, so they outlive it and would hold the ports and the Postgres lock. pm2
// records their pids in PM2_HOME/pids; a pid counts as ours only if that process started just
// before its pid file was written (so a recycled pid is never touched).
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Orphan {
  name: string;
  pid: number;
  pidFile: string;
}

const CLOCK_TICKS_PER_SECOND = 100; // Linux USER_HZ on every platform we run on

export function findOrphans(pm2Home: string): Orphan[] {
  const dir = join(pm2Home, 'pids');
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.pid'));
  } catch {
    return [];
  }
  const bootTime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1] ?? 0);
  const orphans: Orphan[] = [];
  for (const file of files) {
    const path = join(dir, file);
    const pid = Number(readFileSync(path, 'utf8').trim());
    const startedAt = processStartSeconds(pid, bootTime);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || startedAt === undefined) continue;
    const writtenAt = statSync(path).mtimeMs / 1000;
    if (startedAt <= writtenAt + 1 && writtenAt - startedAt < 120) orphans.push({ name: file.replace(/-\d+\.pid$/, ''), pid, pidFile: path });
  }
  return orphans;
}

/**
 * Stops orphans gracefully — SIGINT for Postgres (its fast shutdown), SIGTERM for the rest (our
 * Node processes ignore SIGINT under pm2) — then SIGKILL after the grace period, and waits until
 * they are gone, so their ports are free when this returns.
 */
export async function reapOrphans(pm2Home: string, graceMs = 6_000): Promise<Orphan[]> {
  const orphans = findOrphans(pm2Home);
  for (const o of orphans) signal(o.pid, o.name === 'postgres' ? 'SIGINT' : 'SIGTERM');
  const waitGone = async (which: Orphan[], ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (which.some((o) => isAlive(o.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  };
  // Postgres gets the whole grace period (a SIGKILL costs it a crash recovery); the others, whose
  // work is gone with their supervisor anyway, a short one. (An orphaned proxy has been seen to
  // ignore SIGTERM; cause not found yet.)
  const others = orphans.filter((o) => o.name !== 'postgres');
  await waitGone(others, Math.min(graceMs, 2_000));
  for (const o of others) if (isAlive(o.pid)) signal(o.pid, 'SIGKILL');
  await waitGone(orphans, graceMs);
  for (const o of orphans) if (isAlive(o.pid)) signal(o.pid, 'SIGKILL');
  await waitGone(orphans, 2_000);
  for (const o of orphans) rmSync(o.pidFile, { force: true });
  return orphans;
}

function processStartSeconds(pid: number, bootTime: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) counted after the ")" that closes the command name.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    return bootTime + Number(fields[19]) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return processStartSeconds(pid, 0) !== undefined;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
