// Runs a real appliance (`changelens up` from dist/) as a child process on free ports and a temp
// data dir, and watches its JSON log lines. Shared by the end-to-end tests and the benchmarks.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ApplianceStatus } from '../lib/contracts/status.js';
import { distDir } from '../lib/package-root.js';

const execFileAsync = promisify(execFile);
export const cliPath = join(distDir, 'cli', 'main.js');

/** One admin API call with the bearer token (a JSON body when given); throws with the status and answer on an error. */
export async function adminCall(url: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${url}/_changelens${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body: body !== undefined ? JSON.stringify(body) : undefined });
  const json = await res.json() as any;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.code ?? ''} ${json.message ?? JSON.stringify(json)}`.trim());
  return json;
}

export interface LogRecord {
  level?: string;
  service?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface AppliancePorts {
  port: number;
  pgPort: number;
  redisPort: number;
  apiBluePort: number;
  apiGreenPort: number;
  workerBluePort: number;
  workerGreenPort: number;
}

export interface Appliance {
  dataDir: string;
  ports: AppliancePorts;
  env: Record<string, string>;
  /** http://127.0.0.1:<PORT> */
  url: string;
  child: ChildProcess;
  /** Every JSON line printed so far, in order. */
  records: LogRecord[];
  /** Lines on stdout that were not JSON (should stay empty). */
  nonJson: string[];
  stderr(): string;
  /** Resolves with the 'appliance ready' record; rejects if the process exits first. */
  ready: Promise<LogRecord>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForRecord(match: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Sends the signal and resolves when the supervisor has exited. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
  status(): Promise<ApplianceStatus>;
  secrets(): { adminToken: string; pgPassword: string; redisPassword: string };
}

export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export async function appliancePorts(): Promise<AppliancePorts> {
  const [port, pgPort, redisPort, apiBluePort, apiGreenPort, workerBluePort, workerGreenPort] = await freePorts(7);
  return { port: port!, pgPort: pgPort!, redisPort: redisPort!, apiBluePort: apiBluePort!, apiGreenPort: apiGreenPort!, workerBluePort: workerBluePort!, workerGreenPort: workerGreenPort! };
}

export function portsEnv(p: AppliancePorts): Record<string, string> {
  return {
    PORT: String(p.port),
    CHANGELENS_HOST: '127.0.0.1',
    CHANGELENS_PG_PORT: String(p.pgPort),
    CHANGELENS_REDIS_PORT: String(p.redisPort),
    CHANGELENS_API_BLUE_PORT: String(p.apiBluePort),
    CHANGELENS_API_GREEN_PORT: String(p.apiGreenPort),
    CHANGELENS_WORKER_BLUE_PORT: String(p.workerBluePort),
    CHANGELENS_WORKER_GREEN_PORT: String(p.workerGreenPort),
  };
}

export function tempDataDir(prefix = 'changelens-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The environment of the test/bench process minus any CHANGELENS_* settings that could leak in. */
/** This process's env without anything that would configure a child appliance or CLI (the caller's own wins). */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('CHANGELENS_') && k !== 'PORT' && k !== 'DATABASE_URL' && k !== 'REDIS_URL' && !k.startsWith('PM2_') && !k.startsWith('VITEST') && k !== 'NODE_ENV') env[k] = v;
  }
  return env;
}

export interface LaunchOptions {
  dataDir?: string;
  ports?: AppliancePorts;
  /** Extra env (wins over the ports and data dir). */
  env?: Record<string, string>;
  args?: string[];
}

export async function launchAppliance(options: LaunchOptions = {}): Promise<Appliance> {
  const dataDir = options.dataDir ?? tempDataDir();
  const ports = options.ports ?? await appliancePorts();
  const env = { ...portsEnv(ports), CHANGELENS_DATA_DIR: dataDir, ...options.env };
  const child = spawn(process.execPath, [cliPath, 'up', ...(options.args ?? [])], { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const records: LogRecord[] = [];
  const nonJson: string[] = [];
  const waiters = new Set<{ match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }>();
  let stderr = '';
  let partial = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        nonJson.push(line);
        continue;
      }
      records.push(record);
      for (const w of waiters) if (w.match(record)) { waiters.delete(w); w.resolve(record); }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const waitForRecord = (match: (r: LogRecord) => boolean, timeoutMs = 60_000): Promise<LogRecord> => {
    const found = records.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (r: LogRecord) => { clearTimeout(timer); resolve(r); } };
      const timer = setTimeout(() => { waiters.delete(waiter); reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`)); }, timeoutMs);
      waiters.add(waiter);
      void exited.then(({ code }) => {
        if (!waiters.has(waiter)) return;
        waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`appliance exited (code ${code}) before the awaited log line; stderr:\n${stderr}`));
      });
    });
  };

  const ready = waitForRecord((r) => r.service === 'supervisor' && r.msg === 'appliance ready', 120_000);
  ready.catch(() => {}); // observed by whoever awaits it

  return {
    dataDir, ports, env, child, records, nonJson,
    url: `http://127.0.0.1:${ports.port}`,
    stderr: () => stderr,
    ready, exited, waitForRecord,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const t = performance.now();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const { code } = await exited;
      return { code, ms: performance.now() - t };
    },
    async status() {
      const { stdout } = await execFileAsync(process.execPath, [cliPath, 'status', '--json'], { env: { ...baseEnv(), ...env } });
      return JSON.parse(stdout) as ApplianceStatus;
    },
    secrets() {
      return JSON.parse(readFileSync(join(dataDir, 'state', 'secrets.json'), 'utf8')) as { adminToken: string; pgPassword: string; redisPassword: string };
    },
  };
}
