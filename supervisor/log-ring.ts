// The recent log lines of each service, in memory, for `changelens logs`: stdout stays the only sink
// (nothing is written to disk); this is a bounded copy of what went there. Each service keeps at
// most MAX_LINES lines and MAX_BYTES bytes, oldest dropped first, so a chatty release cannot grow the
// supervisor; a follower that reads slower than lines come loses lines (counted), never memory.
import type { ServerResponse } from 'node:http';

const MAX_LINES = 2_000;
const MAX_BYTES = 1024 * 1024;
/** Followers at once (`logs -f` in several terminals); the socket is the owner's alone anyway. */
const MAX_FOLLOWERS = 16;

export interface RingLine { at: number; service: string; line: string }

interface Ring { lines: RingLine[]; head: number; bytes: number }

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** `lines` counts what the other filters let through. */
export interface LogQuery { since?: number; service?: string; lines?: number; level?: LogLevelName }

export class LogRing {
  private readonly rings = new Map<string, Ring>();
  private readonly followers = new Set<{ query: LogQuery; send: (l: RingLine) => void; end: () => void }>();

  constructor(private readonly limits = { lines: MAX_LINES, bytes: MAX_BYTES }) {}

  /** A line (JSON, without its newline) a service printed. */
  push(service: string, line: string, at = Date.now()): void {
    let ring = this.rings.get(service);
    if (!ring) this.rings.set(service, (ring = { lines: [], head: 0, bytes: 0 }));
    const entry = { at, service, line };
    ring.lines.push(entry);
    ring.bytes += line.length;
    // Dropped from the front by moving a head index; compacted now and then, not per line.
    while (ring.lines.length - ring.head > this.limits.lines || (ring.bytes > this.limits.bytes && ring.lines.length - ring.head > 1)) {
      ring.bytes -= ring.lines[ring.head]!.line.length;
      ring.head++;
    }
    if (ring.head > 1024) {
      ring.lines = ring.lines.slice(ring.head);
      ring.head = 0;
    }
    for (const f of this.followers) if (matches(f.query, entry)) f.send(entry);
  }

  /** A stream that writes to `out` and keeps each whole line under `service`. */
  tee(out: { write(s: string): unknown }, service: string): { write(s: string): boolean } {
    return {
      write: (s: string) => {
        out.write(s);
        for (const line of s.split('\n')) if (line !== '') this.push(service, line);
        return true;
      },
    };
  }

  /** The kept lines that match, oldest first, across services; the last `lines` of them when asked. */
  recent(query: LogQuery = {}): RingLine[] {
    const all: RingLine[] = [];
    for (const ring of this.rings.values()) for (let i = ring.head; i < ring.lines.length; i++) if (matches(query, ring.lines[i]!)) all.push(ring.lines[i]!);
    all.sort((a, b) => a.at - b.at);
    return query.lines !== undefined ? all.slice(-query.lines) : all;
  }

  /** Ends every follower's stream (the supervisor stops); lines pushed later reach nobody. */
  close(): void {
    for (const f of this.followers) f.end();
    this.followers.clear();
  }

  services(): string[] {
    return [...this.rings.keys()].sort();
  }

  /**
   * Writes the matching recent lines to `res` as NDJSON, then (follow) each new one until the
   * client goes. A client that cannot keep up loses lines, told how many once it catches up.
   */
  serve(res: ServerResponse, query: LogQuery, follow: boolean): void {
    if (follow && this.followers.size >= MAX_FOLLOWERS) {
      res.writeHead(429, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'CL_ERR_INVALID_REQUEST', message: `${MAX_FOLLOWERS} followers of the logs already; stop one first` }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    // Sent now: a follower of a quiet service has its answer before the first line comes.
    res.flushHeaders();
    for (const l of this.recent(query)) res.write(l.line + '\n');
    if (!follow) {
      res.end();
      return;
    }
    let dropped = 0;
    const follower = {
      query: { ...query, since: undefined, lines: undefined },
      send: (l: RingLine) => {
        if (res.writableNeedDrain) {
          dropped++;
          return;
        }
        if (dropped > 0) {
          res.write(JSON.stringify({ level: 'warn', time: new Date().toISOString(), service: 'supervisor', msg: `${dropped} log lines not shown: the reader was slower than the lines came` }) + '\n');
          dropped = 0;
        }
        res.write(l.line + '\n');
      },
      end: () => res.end(),
    };
    this.followers.add(follower);
    res.on('close', () => this.followers.delete(follower));
  }
}

/** A service filter matches the name or its family: "api" is api-blue and api-green. */
function matches(q: LogQuery, l: RingLine): boolean {
  if (q.since !== undefined && l.at < q.since) return false;
  if (q.service !== undefined && l.service !== q.service && !l.service.startsWith(`${q.service}-`)) return false;
  return q.level === undefined || LOG_LEVELS.indexOf(levelOf(l.line)) >= LOG_LEVELS.indexOf(q.level);
}

/** A line's level without parsing all of it: pino's label ("warn"), or its number (40); info when it has none. */
export function levelOf(line: string): LogLevelName {
  const m = /"level":(?:"([a-z]+)"|(\d+))/.exec(line.slice(0, 200));
  if (m?.[1] && (LOG_LEVELS as readonly string[]).includes(m[1])) return m[1] as LogLevelName;
  if (m?.[2]) return LOG_LEVELS[Math.min(5, Math.max(0, Math.floor(Number(m[2]) / 10) - 1))]!;
  return 'info';
}
