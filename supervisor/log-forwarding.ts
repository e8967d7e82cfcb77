// One JSON log stream on stdout: the children's lines forwarded (wrapped when they are not JSON),
// pm2's console chatter routed into the supervisor's logger.
import { format } from 'node:util';
import type { pino } from 'pino';
import { ChangeLensError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { LogLine } from './process-manager.js';

/** Children's lines go to stdout as they are when they are JSON already; others are wrapped. */
export function forwardLine(out: pino.DestinationStream, { name, stream, line }: LogLine): void {
  if (line.startsWith('{') && line.endsWith('}')) {
    out.write(line + '\n');
    return;
  }
  // Postgres marks severity with ERROR/FATAL/PANIC/WARNING; Redis marks warnings with " # ".
  const level = /\b(FATAL|PANIC|ERROR)\b/.test(line) ? 'error' : /\bWARNING\b| # /.test(line) ? 'warn' : 'info';
  out.write(JSON.stringify({ level, time: new Date().toISOString(), service: name, stream, msg: line }) + '\n');
}

/** pm2 prints its own chatter with console.*; keep stdout JSON by routing it into our logger. */
export function routeConsoleTo(log: Logger): void {
  console.log = (...args: unknown[]) => log.debug(format(...args));
  console.info = console.log;
  console.warn = (...args: unknown[]) => log.warn(format(...args));
  console.error = console.warn;
}

export function errorForLog(err: unknown): object {
  if (err instanceof ChangeLensError) return { code: err.code, message: err.message };
  return err instanceof Error ? { message: err.message, stack: err.stack } : { message: String(err) };
}
