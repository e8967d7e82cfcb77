import { describe, expect, it } from 'vitest';
import { redactRules, redactUrl } from './redact.js';

describe('redaction', () => {
  it('a URL keeps its scheme and host only', () => {
    expect(redactUrl('https://hooks.slack.com/services/T000/B000/XXXXSECRET')).toBe('https://hooks.slack.com/…');
    expect(redactUrl('https://user:pa55@example.com:8443/x?token=abc')).toBe('https://example.com:8443/…');
    expect(redactUrl('http://collector:4318')).toBe('http://collector:4318');
    expect(redactUrl('not a url')).toBe('[redacted]');
  });

  it('monitor rules keep their shape, not their secrets', () => {
    const rules = JSON.stringify([{ name: 'cpu', url: 'https://hook.example/secret-path', command: 'curl -H "token: x"' }]);
    expect(JSON.parse(redactRules(rules))).toEqual([{ name: 'cpu', url: 'https://hook.example/…', command: '[redacted]' }]);
  });
});
