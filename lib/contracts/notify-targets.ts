// Where chat notifications go: CHANGELENS_NOTIFY=slack:URL,teams:URL,wecom:URL,dingtalk:URL,webhook:URL.
// Each kind gets its service's own payload (rollout/notifications.ts). The URLs are secrets (a
// chat webhook's path is its key): anything that shows a target shows `kind scheme://host/…`.
import { redactUrl } from '../redact.js';

export const NOTIFY_KINDS = ['slack', 'teams', 'wecom', 'dingtalk', 'webhook'] as const;
export type NotifyKind = (typeof NOTIFY_KINDS)[number];
export interface NotifyTarget { kind: NotifyKind; url: string }

/** The targets, or the first problem (naming the entry by its position and kind, never its URL). */
export function parseNotifyTargets(text: string): NotifyTarget[] | { error: string } {
  const entries = text.split(',').map((e) => e.trim()).filter(Boolean);
  if (entries.length === 0 || entries.length > 10) return { error: `expected 1-10 entries, got ${entries.length}` };
  const targets: NotifyTarget[] = [];
  for (const [i, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const kind = entry.slice(0, colon);
    const url = entry.slice(colon + 1);
    if (colon <= 0 || !(NOTIFY_KINDS as readonly string[]).includes(kind)) return { error: `entry ${i + 1}: expected kind:URL with kind ${NOTIFY_KINDS.join(', ')}` };
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { error: `entry ${i + 1} (${kind}): expected an http(s) URL` };
    }
    if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || url.length > 2048) return { error: `entry ${i + 1} (${kind}): expected an http(s) URL of at most 2048 characters` };
    // fetch refuses them, and its error would carry the whole URL, password included.
    if (parsed.username !== '' || parsed.password !== '') return { error: `entry ${i + 1} (${kind}): a user or password in the URL is not sent; use the service's key in the path or query` };
    targets.push({ kind: kind as NotifyKind, url });
  }
  return targets;
}

/** How a target is shown: its kind and its URL's scheme and host. */
export const shownTarget = (t: NotifyTarget): string => `${t.kind} ${redactUrl(t.url)}`;
