// A promise given a deadline: its own result, or a rejection once `ms` have passed (the timer
// cleared either way). What it waited on is not cancelled; its later outcome is ignored.

export function withTimeout<T>(promise: Promise<T>, ms: number, what = 'timed out'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}
