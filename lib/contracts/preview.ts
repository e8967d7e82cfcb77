// Pinning a request to a colour (x-changelens-color, or the changelens-color cookie) is a preview:
// it needs a credential, or anyone could reach a candidate or a rolled-back build kept for
// inspection. A credential is the admin token itself, or one the admin API signs: expiring, with a
// purpose — `preview` (a person or a smoke test looking at a colour: recorded apart, never judged)
// or `analysis` (the proxy's own analysis load: judged like any request). Signed with a key
// derived from the admin token, so a new token voids every credential.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const PREVIEW_HEADER = 'x-changelens-preview';
export const PREVIEW_COOKIE = 'changelens-preview';

export type PreviewPurpose = 'preview' | 'analysis';

export function previewKey(adminToken: string): Buffer {
  return createHmac('sha256', adminToken).update('changelens preview v1').digest();
}

/** A credential: `p1.<purpose>.<expires, epoch seconds>.<signature>`. */
export function signPreview(key: Buffer, purpose: PreviewPurpose, expiresAtMs: number): string {
  const body = `p1.${purpose}.${Math.floor(expiresAtMs / 1000)}`;
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

/** The purpose a credential grants now, or null (forged, altered, expired, malformed). */
export function verifyPreview(key: Buffer, credential: string, nowMs: number): PreviewPurpose | null {
  const m = /^p1\.(preview|analysis)\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(credential);
  if (!m) return null;
  const expected = createHmac('sha256', key).update(`p1.${m[1]}.${m[2]}`).digest();
  const given = Buffer.from(m[3]!, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  return Number(m[2]) * 1000 > nowMs ? (m[1] as PreviewPurpose) : null;
}
