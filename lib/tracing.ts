// W3C trace context through the whole system: accepted from the client or started at the proxy,
// carried proxy → API (HTTP header) → job message → worker, with trace_id and span_id on every log
// line written for that request or job.
//
// Spans are recorded only when they go somewhere: with OTEL_EXPORTER_OTLP_ENDPOINT set, the
// OpenTelemetry SDK is loaded and records and exports them over OTLP. Without it (the default),
// the SDK is never loaded (its imports cost every process ~60 ms at start and memory for life) and
// a span is the API's non-recording span around ids drawn here: the ids still reach the logs and
// the next hop, at the cost of a header parse and a few random bytes per request.
//
// The traceparent header is read and written here, in both modes (the format is four fixed-width
// hex fields: https://www.w3.org/TR/trace-context/), so what crosses a hop does not depend on
// whether this process exports.
//
// Context is passed explicitly (a request's span lives on the request, a job's in its message),
// not through AsyncLocalStorage: cheaper on the proxy's hot path, and it survives the async hops
// (body parsing, Redis) where implicit context is easily lost.
import { randomFillSync } from 'node:crypto';
import { createTraceState, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';

export { SpanKind, SpanStatusCode, type Context, type Span };

let tracerProvider: { shutdown(): Promise<void> } | undefined;
let recording: Tracer | undefined;

/**
 * Sets up the tracer of this process once. With an OTLP endpoint, loads the SDK and exports every
 * span there; without one, loads nothing and records nothing.
 */
export async function initTracing(service: string, otlpEndpoint: string | undefined): Promise<void> {
  if (tracerProvider || !otlpEndpoint) return;
  const [{ BatchSpanProcessor, NodeTracerProvider }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `changelens-${service}` }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otlpEndpoint.replace(/\/$/, '')}/v1/traces` }))],
  });
  tracerProvider = provider;
  recording = provider.getTracer('changelens');
}

/** Whether this process records and exports spans (an OTLP endpoint was given). */
export function tracingExports(): boolean {
  return recording !== undefined;
}

/** Flushes spans still buffered (at shutdown). */
export async function shutdownTracing(): Promise<void> {
  await tracerProvider?.shutdown().catch(() => {});
}

export type Carrier = Record<string, string | string[] | undefined>;

/** Starts a span continuing the trace in `carrier` (HTTP headers, job fields), or a new trace. */
export function startSpanFrom(carrier: Carrier, name: string, kind: SpanKind): { span: Span; ctx: Context } {
  const parent = extractSpanContext(carrier);
  let span: Span;
  if (recording) {
    span = recording.startSpan(name, { kind }, parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT);
  } else {
    span = trace.wrapSpanContext({
      traceId: parent?.traceId ?? randomHex(16),
      spanId: randomHex(8),
      // A trace started here is sampled, as the SDK's default sampler would have it.
      traceFlags: parent?.traceFlags ?? TraceFlags.SAMPLED,
      ...(parent?.traceState ? { traceState: parent.traceState } : {}),
    });
  }
  return { span, ctx: trace.setSpan(ROOT_CONTEXT, span) };
}

/** Writes the context's traceparent (and tracestate) into `carrier`. */
export function injectInto(ctx: Context, carrier: Record<string, string>): Record<string, string> {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !trace.isSpanContextValid(sc)) return carrier;
  carrier.traceparent = `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
  const state = sc.traceState?.serialize();
  if (state) carrier.tracestate = state;
  return carrier;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The remote parent a carrier names, or undefined when it names none or a malformed one (a new
 * trace starts then). Version 00 is exactly four fields; a later version may append more, which
 * are ignored; version ff and all-zero ids are invalid.
 */
export function extractSpanContext(carrier: Carrier): SpanContext | undefined {
  // Repeated traceparents are invalid; repeated tracestates are one list (RFC 9110 §5.3).
  const header = Array.isArray(carrier.traceparent) ? (carrier.traceparent.length === 1 ? carrier.traceparent[0] : undefined) : carrier.traceparent;
  if (header === undefined) return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const sc: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
  if (!trace.isSpanContextValid(sc)) return undefined;
  const state = Array.isArray(carrier.tracestate) ? carrier.tracestate.join(',') : carrier.tracestate;
  if (state) sc.traceState = createTraceState(state);
  return sc;
}

/** The log fields of a span: every line written on its behalf carries them. */
export function traceFields(span: Span): { trace_id: string; span_id: string } {
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** A child logger that stamps the span's ids on every line. */
export function loggerFor<L extends { child(bindings: object): L }>(log: L, span: Span): L {
  return log.child(traceFields(span));
}

export function endSpan(span: Span, statusCode: number | undefined, error?: unknown): void {
  if (!span.isRecording()) return;
  if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
  if (error !== undefined || (statusCode !== undefined && statusCode >= 500)) {
    span.setStatus({ code: SpanStatusCode.ERROR, ...(error instanceof Error ? { message: error.message } : {}) });
  }
  span.end();
}

// Random ids from a pool refilled 16 KB at a time: one getrandom call per ~680 requests.
const pool = Buffer.alloc(16_384);
let used = pool.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (used + bytes > pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    const start = used;
    used += bytes;
    // An all-zero id is invalid (W3C): vanishingly rare, drawn again.
    for (let i = start; i < used; i++) if (pool[i] !== 0) return pool.toString('hex', start, used);
  }
}
