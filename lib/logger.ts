// JSON log lines on stdout (pino), one logger per process with its service and colour as fields.
// No pretty printer and no files: pm2 hands stdout to the supervisor, which passes it through.
import cluster from 'node:cluster';
import { pino, type Logger } from 'pino';
import type { Color, LogLevel } from './config.js';

export type { Logger };

export interface LoggerOptions {
  level?: LogLevel;
  color?: Color | undefined;
  /** Where lines go; the supervisor shares one stdout stream between its own and its children's lines. */
  destination?: pino.DestinationStream;
}

export function createLogger(service: string, options: LoggerOptions = {}): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { service, ...(options.color ? { color: options.color } : {}), pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Secrets never reach logs, whatever object a caller hands over.
    redact: { paths: ['*.password', '*.adminToken', '*.pgPassword', '*.redisPassword', '*.backupKey', '*.databaseUrl', '*.redisUrl', '*.appControlToken', 'req.headers.authorization', 'req.headers["x-changelens-control"]'], censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  }, options.destination ?? defaultDestination());
}

/**
 * A pm2 cluster worker (the API colours, the proxy) shares the supervisor's stdout: writing to fd 1
 * there would bypass pm2's bus (no "last log lines" when it fails to boot) and tear lines between
 * processes. Its process.stdout is pm2's, which sends each line whole over IPC.
 */
function defaultDestination(): pino.DestinationStream {
  return cluster.isWorker && process.env.pm_id !== undefined ? process.stdout : pino.destination({ fd: 1, sync: false });
}
