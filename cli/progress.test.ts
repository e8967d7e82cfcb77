// Progress lines: redrawn in place on a terminal (a bar when the length is known) and cleared at the
// end; a line per tick elsewhere, with what the work says it is doing.
import { describe, expect, it } from 'vitest';
import { withProgress } from './progress.js';

const sink = (isTTY: boolean) => {
  const writes: string[] = [];
  return { out: { isTTY, write: (s: string) => writes.push(s) }, writes };
};
const after = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms));

describe('withProgress', () => {
  it('on a terminal: one line redrawn in place with a bar, cleared when done; the result is the work\'s', async () => {
    const { out, writes } = sink(true);
    expect(await withProgress('load', after(300, 'done'), { totalSeconds: 10, out, intervalMs: 20 })).toBe('done');
    expect(writes.length).toBeGreaterThan(3);
    expect(writes[0]).toMatch(/^\r\x1b\[Kload \[\.{24}\] 0 %, 0 of 10 s$/);
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('elsewhere: a line per tick, with the detail, and nothing at all for quick work', async () => {
    const { out, writes } = sink(false);
    await withProgress('backing up', after(300, null), { out, intervalMs: 25, detail: () => 'postgres dump' });
    expect(writes.length).toBeGreaterThanOrEqual(2);
    expect(writes.every((w) => /^backing up… \d+ s( — postgres dump)?\n$/.test(w))).toBe(true);
    expect(writes.some((w) => w.includes('— postgres dump'))).toBe(true);
    const quick = sink(false);
    await withProgress('x', Promise.resolve(1), { out: quick.out });
    expect(quick.writes).toEqual([]);
  });

  it('a failing work still clears the line and throws its error', async () => {
    const { out, writes } = sink(true);
    await expect(withProgress('restoring', after(60, null).then(() => { throw new Error('bad backup'); }), { out, intervalMs: 10 })).rejects.toThrow('bad backup');
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });
});
