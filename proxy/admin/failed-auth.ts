// Failed sign-ins and bad tokens, per client address: past a limit in a minute the client is
// refused (429 + Retry-After) until the minute ends, whatever it sends — checking its token then
// would tell a guesser when it is right. Each client's first failure of a minute and its block are
// audited, with a cap on those writes so a flood of addresses cannot flood the audit log.
// Behind a load balancer every client may share its address: the limit is generous for that.

export interface FailedAuthVerdict {
  /** Refused for this many more milliseconds; 0 when not blocked. */
  blockedMs: number;
}

export interface FailureNoted {
  /** This failure crossed the limit: the client is blocked from now. */
  blockedNow: boolean;
  /** Worth an audit row: the client's first failure of the window, or its block (within the cap). */
  audit: boolean;
  failures: number;
}

interface Window {
  start: number;
  failures: number;
}

export class FailedAuthLimiter {
  private readonly clients = new Map<string, Window>();
  private audits = { start: 0, count: 0 };

  constructor(
    private readonly limit = 20,
    private readonly windowMs = 60_000,
    /** Clients remembered at once (oldest forgotten first): memory stays bounded under a flood. */
    private readonly maxClients = 10_000,
    private readonly maxAuditsPerWindow = 60,
  ) {}

  check(client: string, now: number): FailedAuthVerdict {
    const w = this.current(client, now);
    return { blockedMs: w && w.failures >= this.limit ? w.start + this.windowMs - now : 0 };
  }

  fail(client: string, now: number): FailureNoted {
    let w = this.current(client, now);
    if (!w) {
      if (this.clients.size >= this.maxClients) this.clients.delete(this.clients.keys().next().value!);
      w = { start: now, failures: 0 };
      this.clients.set(client, w);
    }
    w.failures++;
    const blockedNow = w.failures === this.limit;
    return { blockedNow, failures: w.failures, audit: (w.failures === 1 || blockedNow) && this.auditAllowed(now) };
  }

  private current(client: string, now: number): Window | undefined {
    const w = this.clients.get(client);
    if (w && now - w.start >= this.windowMs) {
      this.clients.delete(client);
      return undefined;
    }
    return w;
  }

  private auditAllowed(now: number): boolean {
    if (now - this.audits.start >= this.windowMs) this.audits = { start: now, count: 0 };
    return ++this.audits.count <= this.maxAuditsPerWindow;
  }
}
