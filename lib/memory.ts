// Start-up leaves a Node process holding what its imports and its first requests allocated and no
// longer use: an idle process right after its boot measured 40-100 MB more than the same process
// half a minute later, once V8's memory reducer had noticed it was idle. Asking for that collection
// once, a moment after the process is ready, gets it there at once (one pause of a few tens of ms).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Collects the start-up's garbage `delayMs` from now (the timer does not hold the process open). */
export function collectStartupGarbage(delayMs = 1_000): void {
  setTimeout(() => {
    // gc() exists only in contexts made after --expose-gc is set: a fresh one, never this process's
    // global (a release's code sees no gc()).
    setFlagsFromString('--expose-gc');
    // 'last-resort': every collectable byte, the young generation shrunk too (what the memory
    // reducer would do), not only a full collection.
    (runInNewContext('gc') as (o: object) => void)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  }, delayMs).unref();
}
