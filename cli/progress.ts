// Progress of long work on stderr (stdout stays the result's, --json's too): on a terminal one line
// redrawn in place — a bar when the length is known, a spinner otherwise — and elsewhere a line per
// second, so a CI log shows the command is alive and what it does.

export interface ProgressOptions {
  /** Known length in seconds (a load of --duration): a bar and what is left. */
  totalSeconds?: number;
  /** What is happening now, asked every second (null: nothing to add). */
  detail?: () => Promise<string | null> | string | null;
  /** Where it goes; stderr by default. */
  out?: { write(s: string): unknown; isTTY?: boolean };
  intervalMs?: number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Shows progress of `work` while it runs; the line is cleared (terminal) once it settles. */
export async function withProgress<T>(label: string, work: Promise<T>, o: ProgressOptions = {}): Promise<T> {
  const out = o.out ?? process.stderr;
  const tty = out.isTTY === true;
  const started = Date.now();
  let tick = 0;
  let detail: string | null = null;
  let asking = false;
  let askedAt = 0;
  const draw = (): void => {
    const s = (Date.now() - started) / 1000;
    // The detail is asked in the background: a slow answer never holds the line.
    if (o.detail && !asking && Date.now() - askedAt >= 1_000) {
      asking = true;
      askedAt = Date.now();
      void Promise.resolve().then(o.detail).then((d) => (detail = d), () => {}).finally(() => (asking = false));
    }
    let line: string;
    if (o.totalSeconds !== undefined && o.totalSeconds > 0) {
      const share = Math.min(1, s / o.totalSeconds);
      const bar = tty ? `[${'#'.repeat(Math.round(share * 24)).padEnd(24, '.')}] ` : '';
      line = `${label} ${bar}${Math.round(share * 100)} %, ${Math.floor(s)} of ${o.totalSeconds} s`;
    } else {
      line = `${label}${tty ? ` ${SPINNER[tick % SPINNER.length]}` : '…'} ${Math.floor(s)} s`;
    }
    if (detail) line += ` — ${detail}`;
    out.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    tick++;
  };
  const timer = setInterval(draw, o.intervalMs ?? (tty ? 200 : 1_000));
  timer.unref();
  try {
    return await work;
  } finally {
    clearInterval(timer);
    if (tty && tick > 0) out.write('\r\x1b[K');
  }
}
