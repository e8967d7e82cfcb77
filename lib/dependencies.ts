// Postgres and Redis as a request needs them: a lost connection is an outage of the named service
// (503 + Retry-After, at once), not an internal error, and never a hang. What a reply error or a
// bad query says is the caller's business and passes through unchanged.
import { ChangeLensError, CL_ERR_DEPENDENCY_UNAVAILABLE, errorCodeOf } from './errors.js';

export type Dependency = 'postgres' | 'redis';

/** Errors of the socket itself: the service is not there, or went away mid-call. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** node-redis's own: offline (its queue is off: lib/redis.ts), closed, the socket dropped or timed out. */
const REDIS_CONNECTION_ERRORS = new Set(['ClientOfflineError', 'ClientClosedError', 'SocketClosedUnexpectedlyError', 'ConnectionTimeoutError', 'SocketTimeoutError', 'ReconnectStrategyError']);
/** Postgres SQLSTATEs of a lost or refused connection: class 08, shutting down, starting up, too many clients. */
const PG_OUTAGE_STATES = /^(08...|57P01|57P02|57P03|53300)$/;
const PG_OUTAGE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is (starting up|shutting down)/i;

/** Whether `err` (from a call to `service`) means the service is unreachable rather than that the call was wrong. */
export function isOutage(service: Dependency, err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  if (NETWORK_CODES.has(code)) return true;
  // node-redis's error classes leave `name` as "Error": their constructor says which.
  if (service === 'redis') return REDIS_CONNECTION_ERRORS.has((e as object).constructor?.name ?? '') || /^LOADING\b/.test(message);
  return PG_OUTAGE_STATES.test(code) || PG_OUTAGE_MESSAGES.test(message);
}

/**
 * A Redis that is there but does not answer (stopped, a disk stall) must not hang the request
 * either. Redis only: a Postgres query may legitimately take long (a db regression's extra work),
 * and its connection attempts are bounded by the pool.
 */
export const REDIS_CALL_TIMEOUT_MS = 2_000;

/** Runs a call to `service`; an outage becomes CL_ERR_DEPENDENCY_UNAVAILABLE naming it, anything else is rethrown. */
export async function needs<T>(service: Dependency, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    if (service === 'postgres') return await call();
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CL_ERR_DEPENDENCY_UNAVAILABLE(service, `no answer in ${REDIS_CALL_TIMEOUT_MS} ms`)), REDIS_CALL_TIMEOUT_MS);
    });
    return await Promise.race([call(), timedOut]);
  } catch (err) {
    if (err instanceof ChangeLensError) throw err;
    // The answer names what failed, not where: the cause (for the log) keeps the address.
    if (isOutage(service, err)) throw new CL_ERR_DEPENDENCY_UNAVAILABLE(service, errorCodeOf(err), { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
