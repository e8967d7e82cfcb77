// Trace context without an exporter (the default: no SDK, ids only) and with one (the SDK loaded,
// spans exported over OTLP to a receiver on loopback). The order matters: the tracer is set up
// once per process, so the exporting tests come last.
import { createServer, type Server } from 'node:http';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { endSpan, extractSpanContext, initTracing, injectInto, shutdownTracing, SpanKind, startSpanFrom, traceFields, tracingExports } from './tracing.js';

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`)).filter((s) => /[1-9a-f]/.test(s));

describe('trace context, nothing exported', () => {
  it('loads no SDK and records nothing', async () => {
    await initTracing('test', undefined);
    expect(tracingExports()).toBe(false);
    const { span } = startSpanFrom({}, 'x', SpanKind.SERVER);
    expect(span.isRecording()).toBe(false);
    endSpan(span, 500, new Error('boom')); // a no-op, not a throw
  });

  it('continues the caller\'s trace with a span id of its own, flags and tracestate carried', () => {
    fc.assert(fc.property(hex(32), hex(16), fc.constantFrom('00', '01'), (traceId, parentId, flags) => {
      const { span, ctx } = startSpanFrom({ traceparent: `00-${traceId}-${parentId}-${flags}`, tracestate: 'vendor=a,other=b' }, 'x', SpanKind.SERVER);
      const { trace_id, span_id } = traceFields(span);
      expect(trace_id).toBe(traceId);
      expect(span_id).toMatch(/^[0-9a-f]{16}$/);
      expect(span_id).not.toBe(parentId);
      const out = injectInto(ctx, {});
      expect(out).toEqual({ traceparent: `00-${traceId}-${span_id}-${flags}`, tracestate: 'vendor=a,other=b' });
    }));
  });

  it('starts a new sampled trace when there is none or it is malformed', () => {
    const bad = [undefined, '', 'garbage', `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`, `00-${'1'.repeat(32)}-${'0'.repeat(16)}-01`,
      `ff-${'1'.repeat(32)}-${'1'.repeat(16)}-01`, `00-${'1'.repeat(32)}-${'1'.repeat(16)}-01-extra`, `00-${'A'.repeat(32)}-${'1'.repeat(16)}-01`,
      [`00-${'1'.repeat(32)}-${'1'.repeat(16)}-01`, `00-${'2'.repeat(32)}-${'2'.repeat(16)}-01`]];
    const seen = new Set<string>();
    for (const traceparent of bad) {
      const { span, ctx } = startSpanFrom({ traceparent }, 'x', SpanKind.SERVER);
      const { trace_id } = traceFields(span);
      expect(trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(trace_id).not.toBe('1'.repeat(32));
      seen.add(trace_id);
      expect(injectInto(ctx, {}).traceparent).toMatch(new RegExp(`^00-${trace_id}-[0-9a-f]{16}-01$`));
    }
    expect(seen.size).toBe(bad.length);
  });

  it('reads repeated tracestate headers as one list', () => {
    const sc = extractSpanContext({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, tracestate: ['one=1', 'two=2'] });
    expect(sc?.traceState?.serialize()).toBe('one=1,two=2');
  });

  it('accepts a later version\'s extra fields, as the W3C spec asks', () => {
    const sc = extractSpanContext({ traceparent: `01-${'a'.repeat(32)}-${'b'.repeat(16)}-01-whatever` });
    expect(sc).toMatchObject({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1, isRemote: true });
  });

  it('draws distinct ids across many spans (the pool refills)', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2_000; i++) ids.add(traceFields(startSpanFrom({}, 'x', SpanKind.SERVER).span).span_id);
    expect(ids.size).toBe(2_000);
  });
});

describe('trace context, exported over OTLP', () => {
  const received: string[] = [];
  let server: Server;
  afterAll(() => new Promise<void>((resolve) => server?.close(() => resolve())));

  it('loads the SDK and exports the span, continuing the caller\'s trace', async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('latin1').on('data', (c: string) => (body += c)).on('end', () => {
        received.push(`${req.method} ${req.url} ${body}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await initTracing('test', `http://127.0.0.1:${port}/`);
    expect(tracingExports()).toBe(true);

    const traceId = 'c'.repeat(32);
    const { span, ctx } = startSpanFrom({ traceparent: `00-${traceId}-${'d'.repeat(16)}-01` }, 'GET /exported', SpanKind.SERVER);
    expect(span.isRecording()).toBe(true);
    expect(traceFields(span).trace_id).toBe(traceId);
    expect(injectInto(ctx, {}).traceparent).toBe(`00-${traceId}-${traceFields(span).span_id}-01`);
    endSpan(span, 200);
    await shutdownTracing(); // flushes the batch
    const exported = received.join('\n');
    expect(exported).toContain('POST /v1/traces');
    expect(exported).toContain('GET /exported');
    expect(exported).toContain('changelens-test');
  });
});
