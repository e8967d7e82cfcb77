// Chat notifications of a deployment's moments (deployed, waiting at a gate or paused for a person,
// promoted, rolled back, failed, aborted): one readable message — the version, the strategy, what fired with its numbers,
// a link to the deployment's page — in each service's own payload (Slack, Microsoft Teams
// workflows, WeCom and DingTalk group robots, or a plain JSON webhook). Each is retried with
// backoff: a 4xx (but 408 and 429) is not, since asking again cannot help; a notification that
// finally fails is audited and shown in status. URLs never leave this file but as `kind scheme://host/…`.
import type { Logger } from '../lib/logger.js';
import { shownTarget, type NotifyKind, type NotifyTarget } from '../lib/contracts/notify-targets.js';
import { connectError } from '../lib/notify.js';
import type { Deployment } from './model.js';
import { candidateWeight } from './state-machine.js';

export type NoticeEvent = 'deploy' | 'gate' | 'paused' | 'promote' | 'rollback' | 'failed' | 'aborted';

export interface Notice {
  event: NoticeEvent;
  deploymentId: string;
  version: string;
  strategy: string;
  stableVersion: string;
  candidateColor: string;
  phase: string;
  /** Why: a rollback's reason carries the rule that fired and its numbers. */
  reason: string | null;
  steps: readonly number[];
  /** The deployment's page on the dashboard, when the appliance knows its public URL. */
  link: string | null;
  at: string;
  /** The readable message, as the chat services show it. */
  title: string;
  text: string;
}

export interface NotificationStatus {
  target: string;
  lastOkAt: string | null;
  lastFailure: { at: string; event: NoticeEvent; version: string; error: string } | null;
}

export interface NotifierOptions {
  targets: readonly NotifyTarget[];
  timeoutMs: number;
  log: Logger;
  /** The public origin (CHANGELENS_PUBLIC_URL): links go to its dashboard. */
  publicUrl?: string | undefined;
  /** Each final outcome, for the audit log. */
  audit: (outcome: { event: NoticeEvent; deployment: Deployment; target: string; attempts: number; ok: boolean; error: string | null }) => Promise<void>;
  attempts?: number;
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const TITLES: Record<NoticeEvent, (d: Deployment) => string> = {
  deploy: (d) => `ChangeLens: deploying ${d.version}`,
  gate: (d) => `ChangeLens: ${d.version} waits for approval`,
  paused: (d) => `ChangeLens: ${d.version} paused, waiting for a person`,
  promote: (d) => `ChangeLens: ${d.version} promoted`,
  rollback: (d) => `ChangeLens: ${d.version} rolled back`,
  failed: (d) => `ChangeLens: ${d.version} failed`,
  aborted: (d) => `ChangeLens: ${d.version} aborted`,
};

/** The notice of a moment of a deployment, with its message. */
export function notice(event: NoticeEvent, d: Deployment, now: Date, publicUrl?: string): Notice {
  const steps = d.status.steps;
  const plan = d.strategy === 'canary' ? `canary ${steps.join(' → ')} %` : d.strategy;
  const lines = [
    event === 'deploy' ? `${d.version} goes out as a ${plan} onto ${d.candidateColor}; stable ${d.stableVersion}.`
      : event === 'promote' ? `${d.version} is active on ${d.candidateColor} (${plan}); ${d.stableVersion} stays warm for an instant undo.`
        : event === 'gate' || event === 'paused' ? `${d.version} (${plan}) is held at ${Math.round(candidateWeight(d.status) * 100)} %: ${d.status.reason ?? 'waiting for a person'}.`
          : `${d.version} (${plan}) ${event === 'rollback' ? 'was rolled back to' : event === 'failed' ? 'failed; traffic stays on' : 'was aborted; traffic is back on'} ${d.stableVersion}: ${d.status.reason ?? 'no reason given'}.`,
  ];
  // A query, not a fragment: it survives signing in (the login form carries it on).
  const link = publicUrl ? `${publicUrl.replace(/\/+$/, '')}/_changelens/?deployment=${encodeURIComponent(d.id)}` : null;
  return {
    event, deploymentId: d.id, version: d.version, strategy: d.strategy, stableVersion: d.stableVersion, candidateColor: d.candidateColor,
    phase: d.status.phase, reason: d.status.reason, steps, link, at: now.toISOString(), title: TITLES[event](d), text: lines.join('\n'),
  };
}

/** What each service's incoming webhook takes. */
export function payloadFor(kind: NotifyKind, n: Notice): unknown {
  switch (kind) {
    case 'slack':
      return { text: `*${n.title}*\n${n.text}${n.link ? `\n<${n.link}|Open the deployment>` : ''}` };
    case 'teams':
      // A Teams workflow ("When a Teams webhook request is received") posts an Adaptive Card.
      return {
        type: 'message',
        attachments: [{
          contentType: 'application/vnd.microsoft.card.adaptive',
          content: {
            $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', type: 'AdaptiveCard', version: '1.4',
            body: [{ type: 'TextBlock', text: n.title, weight: 'Bolder', size: 'Medium', wrap: true }, { type: 'TextBlock', text: n.text, wrap: true }],
            ...(n.link ? { actions: [{ type: 'Action.OpenUrl', title: 'Open the deployment', url: n.link }] } : {}),
          },
        }],
      };
    case 'wecom':
      return { msgtype: 'markdown', markdown: { content: `**${n.title}**\n${n.text}${n.link ? `\n[Open the deployment](${n.link})` : ''}` } };
    case 'dingtalk':
      // A robot with a keyword rule finds "ChangeLens" in every title.
      return { msgtype: 'markdown', markdown: { title: n.title, text: `### ${n.title}\n${n.text}${n.link ? `\n\n[Open the deployment](${n.link})` : ''}` } };
    case 'webhook':
      return n;
  }
}

/** Rate-limit codes of the robots that answer 200 with an error code: worth asking again. */
const ROBOT_BUSY = new Set([45009, 130101]);

class SendError extends Error {
  constructor(message: string, readonly retry: boolean, readonly retryAfterMs?: number) {
    super(message);
  }
}

export class Notifier {
  private readonly state = new Map<NotifyTarget, NotificationStatus>();

  constructor(private readonly o: NotifierOptions) {
    for (const t of o.targets) this.state.set(t, { target: shownTarget(t), lastOkAt: null, lastFailure: null });
  }

  get enabled(): boolean {
    return this.o.targets.length > 0;
  }

  /** Sends to every target at once; resolves when each delivered or gave up. Never throws. */
  async send(event: NoticeEvent, d: Deployment): Promise<void> {
    if (!this.enabled) return;
    const n = notice(event, d, new Date(), this.o.publicUrl);
    await Promise.all(this.o.targets.map((t) => this.deliver(t, n, d)));
  }

  status(): NotificationStatus[] {
    return [...this.state.values()].map((s) => ({ ...s }));
  }

  private async deliver(target: NotifyTarget, n: Notice, d: Deployment): Promise<void> {
    const attempts = this.o.attempts ?? 5;
    const backoff = this.o.backoffMs ?? 1_000;
    const sleep = this.o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
    const body = JSON.stringify(payloadFor(target.kind, n));
    const shown = shownTarget(target);
    let error = '';
    let tried = 0;
    for (; tried < attempts; ) {
      tried++;
      try {
        await this.post(target, body);
        this.state.get(target)!.lastOkAt = new Date().toISOString();
        await this.o.audit({ event: n.event, deployment: d, target: shown, attempts: tried, ok: true, error: null }).catch(() => {});
        return;
      } catch (err) {
        error = (err as Error).message;
        const retry = err instanceof SendError ? err.retry : true;
        if (!retry || tried >= attempts) break;
        // 1, 2, 4, 8 s … with a fifth of jitter, or what a 429 asked for (up to a minute).
        const wait = err instanceof SendError && err.retryAfterMs !== undefined ? Math.min(60_000, err.retryAfterMs) : backoff * 2 ** (tried - 1) * (1 + Math.random() * 0.2);
        this.o.log.info({ target: shown, event: n.event, attempt: tried, err: error }, 'notification not delivered; trying again');
        await sleep(wait);
      }
    }
    this.state.get(target)!.lastFailure = { at: new Date().toISOString(), event: n.event, version: n.version, error };
    this.o.log.warn({ target: shown, event: n.event, attempts: tried, err: error }, 'notification failed');
    await this.o.audit({ event: n.event, deployment: d, target: shown, attempts: tried, ok: false, error }).catch(() => {});
  }

  private async post(target: NotifyTarget, body: string): Promise<void> {
    let res: Response;
    try {
      res = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(this.o.timeoutMs), redirect: 'error' });
    } catch (err) {
      throw new SendError(connectError(err, this.o.timeoutMs), true);
    }
    const text = (await res.text()).slice(0, 2_000);
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('retry-after'));
      const retry = res.status >= 500 || res.status === 408 || res.status === 429;
      throw new SendError(`answered HTTP ${res.status}`, retry, res.status === 429 && Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
    }
    // WeCom and DingTalk robots answer 200 with an error code in the body.
    if (target.kind === 'wecom' || target.kind === 'dingtalk') {
      let code = 0;
      let message = '';
      try {
        const parsed = JSON.parse(text) as { errcode?: number; errmsg?: string };
        code = parsed.errcode ?? 0;
        message = parsed.errmsg ?? '';
      } catch {
        throw new SendError('answered 200 without the robot\'s JSON', false);
      }
      if (code !== 0) throw new SendError(`answered errcode ${code}${message ? ` (${message.slice(0, 200)})` : ''}`, ROBOT_BUSY.has(code));
    }
  }
}
