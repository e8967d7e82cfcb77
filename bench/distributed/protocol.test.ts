// The join string and the seals: what a worker or client is given parses back exactly, and nothing
// unsigned, tampered with or signed with another token is read.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatJoin, newId, newToken, opened, parseJoin, sealed, signingKey } from './protocol.js';

describe('the join string', () => {
  it('round-trips, Redis credentials and database included', () => {
    fc.assert(fc.property(fc.constantFrom('redis://127.0.0.1:6379', 'rediss://:p%40ss@10.0.0.5:6380/2', 'redis://default:x@h:1'), (redisUrl) => {
      const j = { redisUrl, coordinator: newId(), token: newToken() };
      expect(parseJoin(formatJoin(j))).toEqual(j);
    }));
  });

  it('names what is wrong, and the flag it came from', () => {
    expect(() => parseJoin('redis://h:1')).toThrow(/--join: expected what `changelens bench coordinator` printed/);
    expect(() => parseJoin('http://h:1#abcd.0123456789abcdef', '--coordinator')).toThrow(/--coordinator: .*not redis:\/\//);
    expect(() => parseJoin('redis://h:1#ab.0123456789abcdef')).toThrow(/coordinator id/);
    expect(() => parseJoin('redis://h:1#abcd.short')).toThrow(/token/);
  });
});

describe('seals', () => {
  it('only the same token opens a message; a changed byte or signature does not', () => {
    const key = signingKey('0123456789abcdef-one');
    const fields = sealed(key, { kind: 'run', rate: 5 });
    expect(opened(key, fields)).toEqual({ kind: 'run', rate: 5 });
    expect(opened(signingKey('0123456789abcdef-two'), fields)).toBeNull();
    expect(opened(key, { ...fields, m: fields.m!.replace('5', '6') })).toBeNull();
    expect(opened(key, { m: fields.m! })).toBeNull();
    expect(opened(key, undefined)).toBeNull();
  });
});
