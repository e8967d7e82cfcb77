// What instances say to each other through Redis is signed with a key derived from the admin token
// they all share: anything else with the Redis URL (a release, in external mode) can write there.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The key messages are signed with: derived from the admin token, never the token itself. */
export function fleetKey(adminToken: string): Buffer {
  return createHmac('sha256', adminToken).update('changelens fleet commands').digest();
}

export const mac = (key: Buffer, text: string): string => createHmac('sha256', key).update(text).digest('base64url');

/** Whether `sig` is `text`'s signature (compared in constant time). */
export function verify(key: Buffer, text: string, sig: unknown): boolean {
  const expected = Buffer.from(mac(key, text));
  const given = Buffer.from(String(sig));
  return expected.length === given.length && timingSafeEqual(expected, given);
}
