// The join string and the seals: what a worker or client is given parses back exactly, and nothing
// unsigned, tampered with or signed with another token is read.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatJoin, newId, newToken, opened, parseJoin, sealed, signingKey, streamId } from './protocol.js';

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
    const fields = sealed(key, 'request', 1_000, { kind: 'run', rate: 5 });
    expect(opened(key, fields, 'request')).toEqual({ kind: 'run', rate: 5 });
    expect(opened(signingKey('0123456789abcdef-two'), fields, 'request')).toBeNull();
    expect(opened(key, { ...fields, m: fields.m!.replace('5', '6') }, 'request')).toBeNull();
    expect(opened(key, { m: fields.m! }, 'request')).toBeNull();
    expect(opened(key, undefined, 'request')).toBeNull();
  });

  it('a message is read only for what it was sealed for, and only while fresh', () => {
    const key = signingKey('0123456789abcdef-one');
    const fields = sealed(key, 'control', 100_000, { kind: 'run' });
    // A control entry copied into the requests stream is not a request.
    expect(opened(key, fields, 'request')).toBeNull();
    expect(opened(key, fields, 'control', { now: 129_000, maxAgeMs: 30_000 })).toEqual({ kind: 'run' });
    expect(opened(key, fields, 'control', { now: 131_000, maxAgeMs: 30_000 })).toBeNull();
  });
});

describe('streamId', () => {
  it('takes only what Redis makes', () => {
    expect(streamId('1796099910235-0')).toBe('1796099910235-0');
    for (const bad of ['x', '1-', '-1', 'NaN-1', '1-2-3', '', null]) expect(streamId(bad)).toBeNull();
  });
});
