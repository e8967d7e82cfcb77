// Forwarded log lines: the appliance's own pass through untouched; a release's are labelled with
// the process pm2 ran it as, and cannot pass for the supervisor's.
import { describe, expect, it } from 'vitest';
import { forwardLine } from './log-forwarding.js';

function forwarded(name: string, line: string): unknown {
  let written = '';
  forwardLine({ write: (s: string) => { written += s; } }, { name, stream: 'out', line });
  expect(written.endsWith('\n')).toBe(true);
  return JSON.parse(written);
}

describe('forwardLine', () => {
  it('passes the appliance\'s own JSON lines through as they are', () => {
    const line = '{"level":"info","service":"proxy","msg":"proxy listening"}';
    expect(forwarded('proxy', line)).toEqual(JSON.parse(line));
  });

  it('labels a release\'s line with its process, over any field of that name', () => {
    expect(forwarded('api-green', '{"level":"info","service":"api","msg":"hi","process":"proxy"}')).toEqual({ level: 'info', service: 'api', msg: 'hi', process: 'api-green' });
  });

  it('relabels a release\'s line that calls itself an appliance service, keeping the claim', () => {
    expect(forwarded('api-blue', '{"level":"error","service":"supervisor","msg":"appliance ready"}')).toEqual({ level: 'error', service: 'release', claimedService: 'supervisor', msg: 'appliance ready', process: 'api-blue' });
  });

  it('wraps what is not a JSON object, naming the process', () => {
    expect(forwarded('api-blue', '{not json}')).toMatchObject({ service: 'api-blue', process: 'api-blue', msg: '{not json}' });
    expect(forwarded('postgres', 'FATAL: the database system is shutting down')).toMatchObject({ level: 'error', service: 'postgres', process: 'postgres' });
  });

  it('never throws on a line it cannot write back (deep nesting), nor parses a huge one: wrapped as text, cut', () => {
    const deep = '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000);
    expect(forwarded('api-blue', deep)).toMatchObject({ service: 'api-blue', process: 'api-blue' });
    const huge = `{"msg":"${'x'.repeat(200_000)}"}`;
    const wrapped = forwarded('api-blue', huge) as { msg: string };
    expect(wrapped.msg.length).toBeLessThan(70_000);
    expect(wrapped.msg).toContain(`(${huge.length} characters)`);
  });
});
