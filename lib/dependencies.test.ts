// What counts as an outage, with the errors the real clients throw (against a port nobody listens
// on, and Postgres-shaped errors as the pg driver builds them), and what passes through unchanged.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isOutage, needs, REDIS_CALL_TIMEOUT_MS } from './dependencies.js';
import { ChangeLensError } from './errors.js';
import { createRedisClient } from './redis.js';

async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe('needs', () => {
  it('turns a Postgres that is not there into a 503 naming it, with the cause kept', async () => {
    const pool = new pg.Pool({ connectionString: `postgres://x:y@127.0.0.1:${await deadPort()}/z`, connectionTimeoutMillis: 1_000 });
    pool.on('error', () => {});
    const err = await needs('postgres', () => pool.query('SELECT 1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChangeLensError);
    expect(err).toMatchObject({ code: 'CL_ERR_DEPENDENCY_UNAVAILABLE', statusCode: 503 });
    expect((err as Error).message).toMatch(/^postgres is unavailable: /);
    await pool.end();
  });

  it('turns a Redis client that is offline or closed into a 503 at once (no offline queue to hang in)', async () => {
    const closed = createRedisClient(`redis://127.0.0.1:${await deadPort()}`);
    const started = performance.now();
    const err = await needs('redis', () => closed.get('k')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CL_ERR_DEPENDENCY_UNAVAILABLE', message: expect.stringMatching(/^redis is unavailable: /) });
    const offline = createRedisClient(`redis://127.0.0.1:${await deadPort()}`);
    void offline.connect().catch(() => {}); // reconnecting for ever, never ready
    const err2 = await needs('redis', () => offline.get('k')).catch((e: unknown) => e);
    expect(err2).toMatchObject({ code: 'CL_ERR_DEPENDENCY_UNAVAILABLE' });
    // Bounded however busy the box: with an offline queue it would wait for a reconnect that never comes.
    expect(performance.now() - started).toBeLessThan(REDIS_CALL_TIMEOUT_MS);
    offline.destroy();
  });

  it('a Redis call that never answers (Redis stopped, a disk stall) is an outage after a bound, not a hang', async () => {
    const started = performance.now();
    const err = await needs('redis', () => new Promise(() => {})).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CL_ERR_DEPENDENCY_UNAVAILABLE', message: `redis is unavailable: no answer in ${REDIS_CALL_TIMEOUT_MS} ms` });
    expect(performance.now() - started).toBeGreaterThanOrEqual(REDIS_CALL_TIMEOUT_MS - 50);
  });

  it('passes through what is not an outage: a bad query, a reply error, a bug', async () => {
    const syntax = Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601' });
    expect(isOutage('postgres', syntax)).toBe(false);
    expect(isOutage('postgres', Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isOutage('redis', new Error('WRONGTYPE Operation against a key holding the wrong kind of value'))).toBe(false);
    expect(isOutage('redis', new TypeError('x is undefined'))).toBe(false);
    expect(isOutage('postgres', null)).toBe(false);
    const bug = new TypeError('boom');
    await expect(needs('postgres', () => Promise.reject(bug))).rejects.toBe(bug);
    // And what is one: a restart under way, a connection refused, a dropped socket.
    expect(isOutage('postgres', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true);
    expect(isOutage('postgres', Object.assign(new Error('the database system is starting up'), { code: '57P03' }))).toBe(true);
    expect(isOutage('postgres', new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isOutage('redis', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isOutage('redis', new Error('LOADING Redis is loading the dataset in memory'))).toBe(true);
  });
});
