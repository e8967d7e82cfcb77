// One JSON log stream on stdout: the children's lines forwarded (wrapped when they are not JSON),
// pm2's console chatter routed into the supervisor's logger.
import { format } from 'node:util';
import { ChangeLensError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { LogLine } from './process-manager.js';

/** What only the appliance's own processes may call themselves in a log line (the API and the worker are a release's). */
const APPLIANCE_SERVICES = new Set(['supervisor', 'proxy', 'postgres', 'redis']);

/**
 * Children's lines go to stdout as they are when they are JSON already; others are wrapped. A
 * colour's API and worker run release code: its lines are labelled with the process pm2 knows it as, and one that
 * calls itself the supervisor (or another appliance service) is relabelled, the claim kept.
 */
export function forwardLine(out: { write(s: string): unknown }, { name, stream, line }: LogLine): void {
  if (line.startsWith('{') && line.endsWith('}')) {
    if (!/^(api|worker)-/.test(name)) {
      out.write(line + '\n');
      return;
    }
    const relabelled = line.length <= MAX_PARSED_LINE ? relabel(line, name) : null;
    if (relabelled !== null) {
      out.write(relabelled + '\n');
      return;
    }
  }
  // Postgres marks severity with ERROR/FATAL/PANIC/WARNING; Redis marks warnings with " # ".
  const level = /\b(FATAL|PANIC|ERROR)\b/.test(line) ? 'error' : /\bWARNING\b| # /.test(line) ? 'warn' : 'info';
  out.write(JSON.stringify({ level, time: new Date().toISOString(), service: name, process: name, stream, msg: line.length > MAX_WRAPPED_LINE ? `${line.slice(0, MAX_WRAPPED_LINE)}… (${line.length} characters)` : line }) + '\n');
}

/** A line is cut past this when wrapped: one runaway print cannot fill the log. */
const MAX_WRAPPED_LINE = 64 * 1024;
/** A release's line longer than this is wrapped as text, not parsed: the supervisor's loop stays short. */
const MAX_PARSED_LINE = 16 * 1024;

/**
 * The line as a JSON object labelled with its process; null when it is not one, or cannot be
 * written back (nesting deep enough to overflow the stack): then it is wrapped as text.
 */
function relabel(line: string, name: string): string | null {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
    const record = value as Record<string, unknown>;
    if (typeof record.service === 'string' && APPLIANCE_SERVICES.has(record.service)) {
      record.claimedService = record.service;
      record.service = 'release';
    }
    // Last, so it wins over a field of the same name in the line.
    record.process = name;
    return JSON.stringify(record);
  } catch {
    return null;
  }
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
