// "How far back" as operators write it: a duration ago (90s, 30m, 1h, 7d) or an ISO time.

/** The time meant, in ms since the epoch; null when the text is neither form. */
export function sinceMs(value: string, now = Date.now()): number | null {
  const rel = /^(\d{1,6})([smhd])$/.exec(value);
  if (rel) return now - Number(rel[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const abs = Date.parse(value);
  return /^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(abs) ? abs : null;
}

export const SINCE_EXPECTED = 'a duration like 30s, 10m, 1h, 7d or an ISO time';
