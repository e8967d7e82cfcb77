// The dashboard's sign-in sessions: a random id in the cookie, never the admin token, so a stolen
// cookie is worth one session that expires, ends at sign-out, and dies with the proxy (a new
// admin token means a restart: every session ends). Memory only, bounded.
import { randomBytes } from 'node:crypto';

export const SESSION_SECONDS = 12 * 3600;
const MAX_SESSIONS = 1_000;

export class Sessions {
  private readonly byId = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A new session; the oldest goes when too many are open. */
  create(): string {
    if (this.byId.size >= MAX_SESSIONS) this.byId.delete(this.byId.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    this.byId.set(id, this.now() + SESSION_SECONDS * 1000);
    return id;
  }

  valid(id: string | undefined): boolean {
    if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return false;
    const expires = this.byId.get(id);
    if (expires === undefined) return false;
    if (expires <= this.now()) {
      this.byId.delete(id);
      return false;
    }
    // A hash lookup of 256 random bits: its timing tells a guesser nothing worth having.
    return true;
  }

  end(id: string | undefined): void {
    if (id !== undefined) this.byId.delete(id);
  }
}
