// Control of the built-in API (its regressions, its metrics' reset) is the operator's: the API
// honours those routes only with this header carrying the control token, which the proxy's admin
// API adds for a caller holding the admin token, and which no client can send through the proxy
// (the forwarder drops the header). The token is derived from the admin token, so the API never
// holds the admin token itself, and a rotation of the admin token rotates it too; and per colour,
// so what runs on one colour (an uploaded release learns its own) cannot control the other.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Color } from '../config.js';

export const APP_CONTROL_HEADER = 'x-changelens-control';

export function appControlToken(adminToken: string, color: Color): string {
  return createHmac('sha256', adminToken).update(`changelens app control v1 ${color}`).digest('base64url');
}

/** Constant-time: whether a request's header carries the token. */
export function carriesControlToken(header: string | string[] | undefined, token: string | undefined): boolean {
  if (token === undefined || typeof header !== 'string') return false;
  const given = Buffer.from(header);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
