// What a URL may show of itself in config output, audit rows and logs: its scheme and host. A
// webhook's path is often its secret (Slack, Teams, DingTalk), and user:password@ always is.
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const rest = u.pathname !== '/' || u.search !== '' ? '/…' : '';
    return `${u.protocol}//${u.host}${rest}`;
  } catch {
    return '[redacted]';
  }
}

/** Monitor rules as JSON, with each rule's url and command redacted. */
export function redactRules(json: string): string {
  try {
    const rules = JSON.parse(json) as Array<Record<string, unknown>>;
    return JSON.stringify(rules.map((r) => ({ ...r, ...(typeof r.url === 'string' ? { url: redactUrl(r.url) } : {}), ...(typeof r.command === 'string' ? { command: '[redacted]' } : {}) })));
  } catch {
    return '[redacted]';
  }
}
