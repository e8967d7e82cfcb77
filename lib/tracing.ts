// W3C trace context through the whole system: accepted from the client or started at the proxy,
// carried proxy → API (HTTP header) → job message → worker, with trace_id and span_id on every log
// line written for that request or job. OpenTelemetry's API and SDK do the ids and the header
// format; spans are exported over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
//
// Context is passed explicitly (a request's span lives on the request, a job's in its message),
// not through AsyncLocalStorage: cheaper on the proxy's hot path, and it survives the async hops
// (body parsing, Redis) where implicit context is easily lost.
import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';

export { SpanKind, SpanStatusCode, type Context, type Span };

let provider: NodeTracerProvider | undefined;

/** Sets up the tracer of this process once; exports spans only when an OTLP endpoint is given. */
export async function initTracing(service: string, otlpEndpoint: string | undefined): Promise<void> {
  if (provider) return;
  const spanProcessors: SpanProcessor[] = [];
  if (otlpEndpoint) {
    // Loaded only when used: the exporter pulls in protobuf and HTTP code nobody else needs.
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otlpEndpoint.replace(/\/$/, '')}/v1/traces` })));
  }
  provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': `changelens-${service}` }), spanProcessors });
  provider.register({ propagator: new W3CTraceContextPropagator() });
}

/** Flushes spans still buffered (at shutdown). */
export async function shutdownTracing(): Promise<void> {
  await provider?.shutdown().catch(() => {});
}

const tracer = () => trace.getTracer('changelens');

export type Carrier = Record<string, string | string[] | undefined>;

/** Starts a span continuing the trace in `carrier` (HTTP headers, job fields), or a new trace. */
export function startSpanFrom(carrier: Carrier, name: string, kind: SpanKind): { span: Span; ctx: Context } {
  const parent = propagation.extract(ROOT_CONTEXT, carrier);
  const span = tracer().startSpan(name, { kind }, parent);
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Writes the context's traceparent (and tracestate) into `carrier`. */
export function injectInto(ctx: Context, carrier: Record<string, string>): Record<string, string> {
  propagation.inject(ctx, carrier);
  return carrier;
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
  if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
  if (error !== undefined || (statusCode !== undefined && statusCode >= 500)) {
    span.setStatus({ code: SpanStatusCode.ERROR, ...(error instanceof Error ? { message: error.message } : {}) });
  }
  span.end();
}
