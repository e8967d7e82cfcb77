// The gate webhook (Flagger's confirm-promotion): while a deployment waits at a gate, the
// controller POSTs it to the webhook every window; the first 2xx answer approves the held step.
// Anything else (an error, a timeout, a 4xx or 5xx) keeps it waiting for the next ask, or a person.
import type { Logger } from '../lib/logger.js';
import { connectError } from '../lib/notify.js';
import { redactUrl } from '../lib/redact.js';
import type { Deployment } from './model.js';

export interface GatePoll {
  url: string;
  deployment: Deployment;
  everyMs: number;
  timeoutMs: number;
  /** False once the deployment left this gate (approved, rolled back, ended, another controller). */
  still: () => boolean;
  sleep: (ms: number) => Promise<void>;
  log: Logger;
}

/** True when the webhook approved while the gate still held; false when the gate went first. */
export async function pollGate(o: GatePoll): Promise<boolean> {
  const d = o.deployment;
  const held = d.status.stepIndex;
  let lastError = '';
  while (o.still()) {
    const body = JSON.stringify({ type: 'gate', deploymentId: d.id, version: d.version, strategy: d.strategy, stepIndex: held, weight: d.status.steps[held], reason: d.status.reason, at: new Date().toISOString() });
    try {
      await approves(o.url, body, o.timeoutMs);
      o.log.info({ deployment: d.id, webhook: redactUrl(o.url) }, 'the gate webhook approved');
      return true;
    } catch (err) {
      // Said once per kind of answer, not every window.
      const error = (err as Error).message;
      if (error !== lastError) o.log.info({ deployment: d.id, webhook: redactUrl(o.url), answer: error }, 'the gate webhook did not approve; asking again next window');
      lastError = error;
    }
    await o.sleep(o.everyMs);
  }
  return false;
}

/**
 * Resolves on a 2xx from the URL itself: a redirect (a login page in front of the approval
 * service) is not followed and approves nothing. Errors are fixed words, never the URL.
 */
async function approves(url: string, body: string, timeoutMs: number): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  } catch (err) {
    throw new Error(connectError(err, timeoutMs));
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status > 299) throw new Error(`answered HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (a redirect: not followed)' : ''}`);
}
