// Readiness probes: a real round trip to each service (SELECT 1, PING, HTTP /readyz), each bounded
// by a short timeout so a hung service reads as "not ready" rather than hanging the caller.
import pg from 'pg';
import { createRedisClient, destroyQuietly } from '../lib/redis.js';
import { withTimeout } from '../lib/timeout.js';

export interface ProbeResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

const PROBE_TIMEOUT_MS = 1_500;

export async function probePostgres(url: string): Promise<ProbeResult> {
  const started = performance.now();
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS, query_timeout: PROBE_TIMEOUT_MS });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { ok: true, latencyMs: performance.now() - started };
  } catch (err) {
    return { ok: false, latencyMs: performance.now() - started, error: describe(err) };
  } finally {
    client.end().catch(() => {});
  }
}

export async function probeRedis(url: string): Promise<ProbeResult> {
  const started = performance.now();
  // One attempt per probe: the caller decides when to try again.
  const client = createRedisClient(url, { name: 'changelens-probe', reconnect: false });
  try {
    await withTimeout(client.connect(), PROBE_TIMEOUT_MS);
    const pong = await withTimeout(client.ping(), PROBE_TIMEOUT_MS);
    return pong === 'PONG' ? { ok: true, latencyMs: performance.now() - started } : { ok: false, latencyMs: performance.now() - started, error: `PING answered ${pong}` };
  } catch (err) {
    return { ok: false, latencyMs: performance.now() - started, error: describe(err) };
  } finally {
    destroyQuietly(client);
  }
}

export async function probeHttp(url: string): Promise<ProbeResult> {
  const started = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    const body = await res.text();
    return res.ok ? { ok: true, latencyMs: performance.now() - started } : { ok: false, latencyMs: performance.now() - started, error: `HTTP ${res.status} ${body.slice(0, 200)}` };
  } catch (err) {
    return { ok: false, latencyMs: performance.now() - started, error: describe(err) };
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const code = (err as NodeJS.ErrnoException).code ?? (cause as NodeJS.ErrnoException | undefined)?.code;
    const message = err.message || (err as AggregateError).errors?.map((e: Error) => e.message).join('; ') || err.name;
    return code && !message.includes(code) ? `${code} ${message}` : message;
  }
  return String(err);
}
