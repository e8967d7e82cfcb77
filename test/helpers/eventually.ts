// Waits until `fn` yields a value (not undefined), retrying on errors too; vitest's vi.waitFor does
// the polling, this only names what was awaited in the failure.
import { vi } from 'vitest';

export function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  return vi.waitFor(async () => {
    const value = await fn();
    if (value === undefined) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    return value;
  }, { timeout: timeoutMs, interval: 150 });
}
