import { randomBytes } from 'node:crypto';

/** A new id: its prefix, the time (base 36) and 6 random hex digits ("audit-m1x2y3z4-a1b2c3"). */
export function newId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
