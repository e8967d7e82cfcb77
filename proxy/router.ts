// Which colour serves a request. In order: an explicit pin (header or cookie, for previews and
// tests), then the user's sticky cookie from this rollout (so a user stays on one colour while the
// weights move), then the weights. Pure and synchronous: the proxy calls it once per request with
// the current routing table, an immutable object swapped whole when the rollout changes it.
import type { IncomingHttpHeaders } from 'node:http';
import type { Color } from '../lib/config.js';
import type { RoutingTable } from '../lib/contracts/routing.js';

export const COLOR_PIN_HEADER = 'x-changelens-color';
export const COLOR_PIN_COOKIE = 'changelens-color';
export const STICKY_COOKIE = 'changelens-sticky';
/** On a copy the mirror sends (proxy/mirror.ts): warmup or analysis. Stripped from clients' requests. */
export const MIRROR_HEADER = 'x-changelens-mirror';

export type RouteDecision =
  | { color: Color; reason: 'pin' | 'sticky' | 'weight' | 'stable'; /** Set-Cookie value to make the user sticky. */ setSticky?: string }
  | { error: string };

export function route(headers: IncomingHttpHeaders, table: RoutingTable, random: () => number): RouteDecision {
  const pin = headers[COLOR_PIN_HEADER];
  if (pin !== undefined) {
    return pin === 'blue' || pin === 'green' ? { color: pin, reason: 'pin' } : { error: `header ${COLOR_PIN_HEADER}: expected blue or green, got ${JSON.stringify(pin)}` };
  }
  const cookies = headers.cookie;
  const pinCookie = cookies === undefined ? undefined : readCookie(cookies, COLOR_PIN_COOKIE);
  if (pinCookie !== undefined) {
    return pinCookie === 'blue' || pinCookie === 'green' ? { color: pinCookie, reason: 'pin' } : { error: `cookie ${COLOR_PIN_COOKIE}: expected blue or green, got ${JSON.stringify(pinCookie)}` };
  }
  const { candidate, rolloutId, stable } = table;
  if (candidate === null || rolloutId === null) return { color: stable, reason: 'stable' };

  const sticky = cookies === undefined ? undefined : readCookie(cookies, STICKY_COOKIE);
  if (sticky !== undefined) {
    const dot = sticky.lastIndexOf('.');
    const color = sticky.slice(dot + 1);
    if (dot > 0 && sticky.slice(0, dot) === rolloutId && (color === stable || color === candidate)) {
      // A rolled-back candidate (weight 0) gets nobody, sticky or not.
      if (color === candidate && table.candidateWeight === 0) return { color: stable, reason: 'stable', setSticky: `${rolloutId}.${stable}` };
      return { color, reason: 'sticky' };
    }
  }
  if (table.candidateWeight <= 0) return { color: stable, reason: 'stable' };
  const color = random() < table.candidateWeight ? candidate : stable;
  return { color, reason: 'weight', setSticky: `${rolloutId}.${color}` };
}

/** Whether a request carries a body (then it is never sent twice: no retry, no hold, no copy). */
export function requestHasBody(req: { headers: IncomingHttpHeaders }): boolean {
  const length = req.headers['content-length'];
  return length !== undefined ? length !== '0' : req.headers['transfer-encoding'] !== undefined;
}

/** The value of one cookie in a Cookie header, or undefined. */
export function readCookie(header: string | string[], name: string): string | undefined {
  for (const part of (Array.isArray(header) ? header.join('; ') : header).split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw; // a malformed escape is just a value that matches nothing
      }
    }
  }
  return undefined;
}
