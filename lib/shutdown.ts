// Graceful stop for every Node process. Under pm2, the supervisor stops a process with a
// "shutdown" message (ecosystem.config.js: shutdown_with_message); SIGINT is then ignored,
// because pm2's cluster workers share the supervisor's process group and a Ctrl-C in its
// terminal would otherwise stop them before the proxy has drained. Run by hand, SIGINT stops it.
// SIGTERM always does. The stop work runs once, then the process exits (1 if anything failed).
import type { Logger } from './logger.js';

export function onStopSignal(log: Logger, stop: () => Promise<void>, options: { underPm2: boolean }): void {
  let stopping = false;
  const handler = (cause: string): void => {
    if (stopping) return;
    stopping = true;
    const t = performance.now();
    log.info({ cause }, 'stopping');
    stop().then(
      () => {
        log.info({ ms: Math.round(performance.now() - t) }, 'stopped');
        exit(log, typeof process.exitCode === 'number' ? process.exitCode : 0);
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        exit(log, 1);
      },
    );
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  if (options.underPm2) {
    process.on('SIGINT', () => log.debug('SIGINT ignored: the supervisor stops this process'));
    process.on('message', (msg) => {
      if (msg === 'shutdown') handler('shutdown message from the supervisor');
    });
  } else {
    process.on('SIGINT', () => handler('SIGINT'));
  }
}

/**
 * Flushes the log, then exits. A flush can never complete when nobody reads stdout any more (an
 * orphan whose supervisor died: EPIPE), so exit anyway shortly after.
 */
function exit(log: Logger, code: number): void {
  setTimeout(() => process.exit(code), 500).unref();
  try {
    log.flush(() => process.exit(code));
  } catch {
    process.exit(code);
  }
}
