// The gate webhook (Flagger's confirm-promotion): while a deployment waits at a gate, the
// controller POSTs it to the webhook every window; the first 2xx answer approves the held step.
// Anything else (an error, a timeout, a 4xx or 5xx) keeps it waiting for the next ask, or a person.
import { postJson } from '../lib/notify.js';
import type { Logger } from '../lib/logger.js';
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
      await postJson(o.url, body, o.timeoutMs);
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
