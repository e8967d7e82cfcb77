// Graceful stop for every Node process: pm2 sends SIGINT (its kill signal), a terminal or a
// container runtime may send SIGTERM. Either runs the stop work once, then exits 0.
import type { Logger } from './logger.js';

export function onStopSignal(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    const t = performance.now();
    log.info({ signal }, 'stopping');
    stop().then(
      () => {
        log.info({ ms: Math.round(performance.now() - t) }, 'stopped');
        log.flush(() => process.exit(0));
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        log.flush(() => process.exit(1));
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
