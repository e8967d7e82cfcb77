// Failed sign-ins and bad tokens, per client address: past a limit in a minute, the client's
// further failures are answered 429 + Retry-After until the minute ends, and no longer audited.
// Each client's first failure of a minute and its block are audited, with a cap on those writes so
// a flood of addresses cannot flood the audit log. The right token is never refused (see AuthFailures).
import type { NewAuditEvent } from '../../lib/audit.js';
import { CL_ERR_TOO_MANY_FAILURES, type ChangeLensError } from '../../lib/errors.js';

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
      if (this.clients.size >= this.maxClients) this.evictOne(now);
      w = { start: now, failures: 0 };
      this.clients.set(client, w);
    }
    w.failures++;
    const blockedNow = w.failures === this.limit;
    return { blockedNow, failures: w.failures, audit: (w.failures === 1 || blockedNow) && this.auditAllowed(now, blockedNow) };
  }

  /** Forgets the oldest client that is not blocked (a flood of new addresses cannot unblock one), else the oldest. */
  private evictOne(now: number): void {
    let scanned = 0;
    for (const [client, w] of this.clients) {
      if (w.failures < this.limit || now - w.start >= this.windowMs || ++scanned > 64) {
        this.clients.delete(client);
        return;
      }
    }
    this.clients.delete(this.clients.keys().next().value!);
  }

  private current(client: string, now: number): Window | undefined {
    const w = this.clients.get(client);
    if (w && now - w.start >= this.windowMs) {
      this.clients.delete(client);
      return undefined;
    }
    return w;
  }

  /** First failures may use half the cap, so a flood of addresses leaves room for the blocks. */
  private auditAllowed(now: number, block: boolean): boolean {
    if (now - this.audits.start >= this.windowMs) this.audits = { start: now, count: 0 };
    if (!block && this.audits.count >= this.maxAuditsPerWindow / 2) return false;
    return ++this.audits.count <= this.maxAuditsPerWindow;
  }
}

/**
 * Wrong tokens and failed sign-ins, wherever a token is checked (the admin scope, /healthz?all=1):
 * counted per client address, audited (bounded: a client's first of a minute and its block), and
 * past the limit answered 429 without an audit row. The right token always gets in: blocking it
 * would let anyone lock the operator out from behind a load balancer that gives every client one
 * address, and a 256-bit token is not guessed.
 */
export class AuthFailures {
  private readonly limiter = new FailedAuthLimiter();
  constructor(private readonly store: { audit(e: NewAuditEvent): Promise<unknown> }) {}

  /** Notes one failure; the refusal to send (429 once the client is past the limit, else null for the usual 401). */
  failed(req: { method?: string | undefined; socket: { remoteAddress?: string | undefined } }, path: string, log: { warn(o: object, msg: string): void }): ChangeLensError | null {
    const client = req.socket.remoteAddress ?? 'unknown';
    const now = Date.now();
    const { blockedMs } = this.limiter.check(client, now);
    if (blockedMs > 0) return new CL_ERR_TOO_MANY_FAILURES(client, Math.max(1, Math.ceil(blockedMs / 1000)));
    const noted = this.limiter.fail(client, now);
    if (noted.blockedNow) log.warn({ client, failures: noted.failures }, 'too many failed sign-ins or wrong tokens from one address; its next failures are answered 429 for the rest of the minute');
    if (noted.audit) {
      void this.store.audit({
        eventType: noted.blockedNow ? 'auth.blocked' : 'auth.failed', deploymentId: null, actor: 'anonymous', version: null,
        // The path is the caller's: cut, so a failure costs the audit log a bounded row.
        details: { client, method: req.method ?? '', path: path.slice(0, 200), failures: noted.failures },
        success: false, error: noted.blockedNow ? 'too many failures' : 'wrong or missing credential',
      }).catch(() => {});
    }
    return null;
  }
}
