// The proxy's hot path: one request in, one request out to the colour the router picked, on a bare
// undici Pool per colour, with the response streamed back as it arrives. It sits under fastify (at
// the node:http level) because fastify + @fastify/http-proxy cost three quarters of the throughput
// nginx reaches on this box (bench:proxy: 0.16× nginx through them).
//
// Per request: route (pin → sticky → weights), a span continuing the client's trace, the trace
// header to the app, the colour echoed back, app metrics (x-changelens-metric-*) taken out of the
// response, the sticky cookie set, the latency and status recorded for the judge, and a request
// the rollout sent to an unreachable candidate re-sent to the stable colour when that is safe, and
// an idempotent request whose colour is down (crashed, restarting) held and re-sent to it for a few
// seconds, and a copy offered to the mirror when the table has one (its answer never reaches the client).
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { AccessLog, Color } from '../lib/config.js';
import { APP_CONTROL_HEADER } from '../lib/contracts/app-control.js';
import { PREVIEW_COOKIE, PREVIEW_HEADER, type PreviewPurpose } from '../lib/contracts/preview.js';
import { CL_ERR_AMBIGUOUS_REQUEST, CL_ERR_BAD_PIN, CL_ERR_PIN_REFUSED, CL_ERR_MAINTENANCE, CL_ERR_UPSTREAM, CL_ERR_UPSTREAM_BUSY, CL_ERR_UPSTREAM_TIMEOUT, errorBody, errorCodeOf } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { endSpan, injectInto, SpanKind, startSpanFrom, traceFields, type Context, type Span } from '../lib/tracing.js';
import { JOB_COLOR_HEADER } from '../lib/contracts/jobs.js';
import type { RoutingTable } from '../lib/contracts/routing.js';
import type { Mirror } from './mirror.js';
import { COLOR_PIN_COOKIE, COLOR_PIN_HEADER, MIRROR_HEADER, requestHasBody, route, STICKY_COOKIE } from './router.js';

export interface ForwardOptions {
  log: Logger;
  upstreams: Record<Color, string>;
  /** The current routing table; read per request, swapped whole when routing changes. */
  routingTable: () => RoutingTable;
  accessLog: AccessLog;
  /** Called once per proxied response: the monitor records it into its colour's current slice. */
  onMeasured?: (color: Color, latencyMs: number, statusCode: number) => void;
  /** A request to the candidate that could not connect was sent to the stable colour instead. */
  onRetriedOnStable?: (from: Color) => void;
  /** An app-reported metric (x-changelens-metric-<name> response header, stripped before the client sees it). */
  onMetric?: (color: Color, name: string, value: number) => void;
  /** While set (a restore), every proxied request is answered 503 with Retry-After. */
  unavailable?: () => { retryAfterSeconds: number; reason: string } | null;
  /** Copies requests to a colour while the routing table says so (proxy/mirror.ts); absent: none. */
  mirror?: Mirror;
  /** An idempotent request whose colour cannot be reached (crashed, pm2 restarting it) is re-sent to it for up to this long. */
  holdMs?: number;
  /** Such a request was held and re-sent. */
  onHeld?: (color: Color) => void;
  /** Requests in flight to one colour (sent, or queued for one of its connections) past which it answers 503. */
  maxInFlight?: number;
  /**
   * What a pinned request's credential grants (lib/contracts/preview.ts): `preview` (served,
   * recorded apart, never judged), `analysis` (judged) or null (refused). Absent: pins are previews.
   */
  previewAccess?: (req: IncomingMessage) => PreviewPurpose | null;
  /** A pinned preview's answer: counted apart from what the judge sees. */
  onPreview?: (color: Color, statusCode: number) => void;
  /** For a request `served` colour serves: the colour whose worker runs the jobs it enqueues, when not its own (CHANGELENS_JOB_SPLIT=weight). */
  jobColor?: (served: Color) => Color | undefined;
}

export interface Forwarder {
  handle(req: IncomingMessage, res: ServerResponse): void;
  close(): Promise<void>;
}

const METRIC_HEADER = 'x-changelens-metric-';
/** Cookies only the appliance sets (lowercase names): pin, sticky, preview credential, dashboard session. */
const APPLIANCE_COOKIES = new Set([COLOR_PIN_COOKIE, STICKY_COOKIE, PREVIEW_COOKIE, 'changelens-admin']);
const METRIC_NAME = /^[a-z0-9_]{1,40}$/;
/** Safe to send twice; the retry also requires that the request had no body. */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Failures where the candidate never answered: nothing reached the app, or its socket was dead. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'EPIPE']);
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
/** Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);
const SLOW_REQUEST_MS = 1_000;
/**
 * How long an idempotent request waits for its colour to come back (pm2 restarts a crashed API in
 * about a second and a half on a busy 2-core box; see the note of issue 18), re-sent with backoff.
 */
export const HOLD_MS = 5_000;
const HOLD_FIRST_RETRY_MS = 50;
const HOLD_MAX_RETRY_MS = 500;
/** An app that sends no headers in 5 minutes is broken; the client gets a 504 instead of a hang. */
const HEADERS_TIMEOUT_MS = 300_000;
/**
 * Connections per colour: room for slow requests (a few hundred of /api/work?ms=10000 at once)
 * before the fast ones queue behind them; then a bounded queue, then 503 + Retry-After.
 */
const CONNECTIONS_PER_COLOR = 512;
export const MAX_IN_FLIGHT_PER_COLOR = 1024;
/**
 * A request body up to this size is read whole before the app is asked, so a client that sends it
 * slowly holds a proxy socket, never one of the colour's connections; a larger one is streamed.
 * All bodies being read at once hold at most BUFFERED_TOTAL_MAX; past it, streamed too.
 */
const BUFFER_BODY_MAX = 1 << 20;
const BUFFERED_TOTAL_MAX = 64 << 20;
/** Larger bodies go on as they arrive, holding a connection each: this many per colour at most. */
const MAX_STREAMED_PER_COLOR = 64;

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  start: number;
  color: Color;
  /** Where a failed connection to the candidate goes instead (null: no retry for this request). */
  retryColor: Color | null;
  retriedFrom: Color | null;
  /** GET/HEAD/OPTIONS without a body, not pinned: may be held and re-sent while its colour is down. */
  holdable: boolean;
  /** Re-sends so far while held. */
  held: number;
  /** The request's body as it is sent: read whole (small), streamed (large), or none. */
  body: Buffer | Readable | null;
  /** The colour whose in-flight count this request holds, if any. */
  occupies: Color | null;
  /** A pinned preview: recorded apart from the judge's requests. */
  preview: boolean;
  /** When it was first sent to a colour: the judge measures the app from here, not the client's upload. Null: never sent. */
  dispatchedAt: number | null;
  /** Gives back the request body's share of the proxy's buffer (idempotent). */
  releaseBody: () => void;
  /** Its body is streamed (large): counted against its colour's streamed bodies. */
  streams: Color | null;
  setSticky: string | null;
  span: Span;
  ctx: Context;
  controller: Dispatcher.DispatchController | null;
}

export function createForwarder(options: ForwardOptions): Forwarder {
  const pools = {} as Record<Color, Pool>;
  for (const color of ['blue', 'green'] as const) {
    // One request per connection at a time: pipelining inflates throughput and distorts P99.
    // An idle pooled socket is dropped after 4 s, before any app closes it (the built-in API keeps
    // sockets 72 s, Node's default is 5 s): a socket reused just as the app closes it fails the
    // request (undici #583/#3141); an idempotent one to a candidate is covered by the retry.
    pools[color] = new Pool(options.upstreams[color], { connections: CONNECTIONS_PER_COLOR, pipelining: 1, keepAliveTimeout: 4_000, headersTimeout: HEADERS_TIMEOUT_MS, bodyTimeout: HEADERS_TIMEOUT_MS });
  }
  const maxInFlight = options.maxInFlight ?? MAX_IN_FLIGHT_PER_COLOR;
  const inFlight: Record<Color, number> = { blue: 0, green: 0 };
  const streamed: Record<Color, number> = { blue: 0, green: 0 };
  let bufferedBytes = 0;
  /** Moves the request's place in the in-flight counts to `color`; false when that colour is full. */
  const occupy = (ex: Exchange, color: Color): boolean => {
    if (ex.occupies === color) return true;
    if (inFlight[color] >= maxInFlight) return false;
    if (ex.occupies !== null) inFlight[ex.occupies]--;
    inFlight[color]++;
    ex.occupies = color;
    return true;
  };
  const measured = options.onMeasured ?? (() => {});
  const previewed = options.onPreview ?? (() => {});
  const retriedOnStable = options.onRetriedOnStable ?? (() => {});
  const reportMetric = options.onMetric ?? (() => {});
  const writeAccessLog = accessLogWriter(options.log, options.accessLog);
  const unavailable = options.unavailable ?? (() => null);
  const holdMs = options.holdMs ?? HOLD_MS;
  const onHeld = options.onHeld ?? (() => {});
  /** Since when each colour has refused (null: its last answer came): one down past the hold is not waited for again. */
  const downSince: Record<Color, number | null> = { blue: null, green: null };
  /** A quick 503 + Retry-After: better than a wait behind what fills the bound. */
  const busy = (ex: Exchange, who: string, what: string): void => {
    // A body still arriving is not read to its end for nothing: the connection closes after this.
    sendJson(ex.res, 503, errorBody(new CL_ERR_UPSTREAM_BUSY(who, what)), { 'retry-after': '1', ...(ex.req.complete ? {} : { connection: 'close' }) });
  };

  function dispatch(ex: Exchange): void {
    const { req, res } = ex;
    if (ex.body instanceof Readable && ex.streams !== ex.color) {
      if (streamed[ex.color] >= MAX_STREAMED_PER_COLOR) {
        busy(ex, `api-${ex.color}`, `${MAX_STREAMED_PER_COLOR} large request bodies streaming`);
        return;
      }
      if (ex.streams !== null) streamed[ex.streams]--;
      streamed[ex.color]++;
      ex.streams = ex.color;
    }
    if (!occupy(ex, ex.color)) {
      // Its connections all busy and its queue full: a quick 503 beats a wait behind them. The
      // colour's own doing (a hung candidate fills it): judged as its 5xx.
      ex.dispatchedAt ??= performance.now();
      busy(ex, `api-${ex.color}`, `${maxInFlight} requests in flight`);
      return;
    }
    ex.dispatchedAt ??= performance.now();
    const headers = upstreamHeaders(req, ex.ctx);
    const jobColor = options.jobColor?.(ex.color);
    if (jobColor !== undefined && !ex.preview) headers[JOB_COLOR_HEADER] = jobColor;
    if (ex.body !== null) ex.retryColor = null;
    pools[ex.color].dispatch({ method: req.method as Dispatcher.HttpMethod, path: req.url!, headers, body: ex.body }, {
      onRequestStart(controller) {
        ex.controller = controller;
        if (res.destroyed) controller.abort(new Error('client went away'));
      },
      onResponseStart(controller, statusCode, upstream) {
        downSince[ex.color] = null;
        // The app has the whole body (it answers): the proxy's copy is no longer held against the buffer.
        ex.releaseBody();
        try {
          res.writeHead(statusCode, clientHeaders(ex, upstream, reportMetric));
        } catch (err) {
          // A header Node refuses to send (the app's fault): a 502, not a crash.
          controller.abort(err as Error);
        }
      },
      onResponseData(controller, chunk) {
        if (!res.write(chunk)) {
          controller.pause();
          res.once('drain', () => controller.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError(_controller, error) {
        failed(ex, error);
      },
    });
  }

  function failed(ex: Exchange, error: Error): void {
    const { res } = ex;
    if (res.headersSent || res.destroyed) {
      // Mid-body: the client must see a broken response, not a short one that looks whole.
      res.destroy(error);
      return;
    }
    if (ex.retryColor !== null && ex.retriedFrom === null && isConnectFailure(error)) {
      // The judge still sees the candidate fail; the client gets the stable colour's answer.
      measured(ex.color, performance.now() - (ex.dispatchedAt ?? ex.start), 502);
      retriedOnStable(ex.color);
      // The stable colour is measured from its own dispatch, not the candidate's failed connect.
      ex.dispatchedAt = null;
      ex.retriedFrom = ex.color;
      ex.color = ex.retryColor;
      ex.controller = null;
      dispatch(ex);
      return;
    }
    const refused = isConnectFailure(error);
    const now = performance.now();
    if (refused) downSince[ex.color] ??= now;
    if (ex.holdable && refused && !res.destroyed && now - downSince[ex.color]! <= holdMs) {
      // Its colour is down (a crash; pm2 brings it back): re-sent with backoff, for a bounded time,
      // so a crash costs the client a wait instead of an error. To the same colour, unless the
      // routing moved away from it meanwhile (a switch, a rollback): then to the stable one.
      const left = holdMs - (now - ex.start);
      if (left > 0) {
        if (ex.held++ === 0) onHeld(ex.color);
        ex.controller = null;
        setTimeout(() => {
          if (res.destroyed) return;
          const table = options.routingTable();
          if (ex.color !== table.stable && !(ex.color === table.candidate && table.candidateWeight > 0)) ex.color = table.stable;
          dispatch(ex);
        }, Math.min(HOLD_FIRST_RETRY_MS * 2 ** (ex.held - 1), HOLD_MAX_RETRY_MS, left));
        return;
      }
    }
    const timedOut = hasCode(error, TIMEOUTS);
    // The client is told what failed, never where: the log line has the full message.
    const err = timedOut ? new CL_ERR_UPSTREAM_TIMEOUT(`api-${ex.color}`, errorCodeOf(error)) : new CL_ERR_UPSTREAM(`api-${ex.color}`, errorCodeOf(error));
    options.log.warn({ ...traceFields(ex.span), err: error.message, errCode: (error as { code?: string }).code, color: ex.color, url: ex.req.url }, 'upstream request failed');
    sendJson(res, err.statusCode, errorBody(err), { [COLOR_PIN_HEADER]: ex.color });
  }

  return {
    handle(req, res) {
      const start = performance.now();
      const down = unavailable();
      if (down) {
        sendJson(res, 503, errorBody(new CL_ERR_MAINTENANCE(down.reason)), { 'retry-after': String(down.retryAfterSeconds) });
        return;
      }
      const ambiguous = framingProblem(req);
      if (ambiguous) {
        // Answered and the connection closed: whatever the client meant to follow is never read as a request.
        sendJson(res, 400, errorBody(new CL_ERR_AMBIGUOUS_REQUEST(ambiguous)), { connection: 'close' });
        return;
      }
      const table = options.routingTable();
      const decision = route(req.headers, table, Math.random);
      if ('error' in decision) {
        sendJson(res, 400, errorBody(new CL_ERR_BAD_PIN(decision.error)));
        return;
      }
      // A pin needs a credential; a preview's answers never reach the judge (they could fake a verdict).
      const access = decision.reason === 'pin' ? (options.previewAccess ? options.previewAccess(req) : 'preview') : null;
      if (decision.reason === 'pin' && access === null) {
        sendJson(res, 403, errorBody(new CL_ERR_PIN_REFUSED(decision.color)));
        return;
      }
      const { span, ctx } = startSpanFrom(req.headers, `proxy ${req.method}`, SpanKind.SERVER);
      span.setAttribute('changelens.color', decision.color);
      const ex: Exchange = {
        req, res, start, span, ctx, controller: null,
        color: decision.color,
        // A request the rollout sent to the candidate falls back to the stable colour if the
        // candidate cannot be reached; a pinned one (a preview) must see the candidate's real failure.
        retryColor: decision.reason !== 'pin' && decision.color !== table.stable && RETRYABLE_METHODS.has(req.method!) ? table.stable : null,
        retriedFrom: null,
        holdable: decision.reason !== 'pin' && RETRYABLE_METHODS.has(req.method!) && !requestHasBody(req),
        held: 0,
        setSticky: decision.setSticky ?? null,
        body: null,
        occupies: null,
        preview: access === 'preview',
        dispatchedAt: null,
        releaseBody: () => {
          bufferedBytes -= buffered;
          buffered = 0;
        },
        streams: null,
      };
      let buffered = 0;
      res.once('close', () => {
        if (ex.occupies !== null) inFlight[ex.occupies]--;
        if (ex.streams !== null) streamed[ex.streams]--;
        ex.releaseBody();
        // 499 (nginx's word): the client left before an answer; the app may still be working.
        const status = res.headersSent ? res.statusCode : 499;
        if (!res.writableFinished) ex.controller?.abort(new Error('client went away'));
        // Answered before the app was asked (busy, a body that never came): nothing of the colour's to judge.
        if (ex.dispatchedAt === null) { /* not the app's doing */ }
        else if (ex.preview) previewed(ex.color, status);
        else measured(ex.color, performance.now() - ex.dispatchedAt, status);
        // A body the app did not wait for: read to its end, so the connection is not left hanging.
        if (!req.complete && !req.destroyed) req.resume();
        endSpan(span, status);
        writeAccessLog(ex, status);
      });
      // A copy for a warming or analysed candidate: of what the rollout routes to another colour, never a pin.
      const rule = table.mirror;
      if (rule && options.mirror && decision.reason !== 'pin' && decision.color !== rule.color) options.mirror.offer(rule, req, () => upstreamHeaders(req, ctx));
      if (!requestHasBody(req)) {
        dispatch(ex);
        return;
      }
      readBody(req, (n) => {
        if (bufferedBytes + n > BUFFERED_TOTAL_MAX) return false;
        buffered += n;
        bufferedBytes += n;
        return true;
      }, (body) => {
        if (res.destroyed) return;
        if (body === null) {
          // The proxy holds as much of others' bodies as it may: this small one is not read now.
          busy(ex, 'the proxy', `${BUFFERED_TOTAL_MAX >> 20} MB of request bodies held`);
          return;
        }
        // A streamed body's head is on its way to the app: no longer held against the proxy's buffer.
        if (body instanceof Readable) ex.releaseBody();
        ex.body = body;
        dispatch(ex);
      });
    },
    async close() {
      await Promise.all(Object.values(pools).map((p) => p.close().catch(() => {})));
    },
  };
}

function upstreamHeaders(req: IncomingMessage, ctx: Context): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = connectionNamed(req.headers.connection);
  for (const name in req.headers) {
    // The mirror's mark is the proxy's to set: a client cannot make its request look like a copy;
    // the app's control credential is the admin API's to add, never a client's to pass on.
    if (HOP_BY_HOP.has(name) || named?.has(name) || name === MIRROR_HEADER || name === APP_CONTROL_HEADER || name === PREVIEW_HEADER || name === JOB_COLOR_HEADER) continue;
    // Node has answered 100 Continue itself; undici refuses to send the header on.
    if (name === 'expect') continue;
    // The trace context goes on as this proxy's span continues it (injectInto below): a client's
    // malformed or oversized one, which started a new trace, is not passed on beside it.
    if (name === 'traceparent' || name === 'tracestate') continue;
    if (name === 'cookie') {
      // The preview credential and the dashboard's session are the appliance's, not the app's to read.
      const kept = withoutApplianceCookies(req.headers.cookie!);
      if (kept !== '') out.cookie = kept;
      continue;
    }
    // Some servers read _ as - (Transfer_Encoding as Transfer-Encoding): dropped, as nginx does.
    if (name.includes('_')) continue;
    const value = req.headers[name];
    if (value !== undefined) out[name] = value;
  }
  // Who asked, on which host and scheme: the app sees the client, not the proxy.
  const peer = req.socket.remoteAddress ?? '';
  const forwarded = req.headers['x-forwarded-for'];
  out['x-forwarded-for'] = forwarded ? `${forwarded}, ${peer}` : peer;
  if (!req.headers['x-forwarded-proto']) out['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http';
  if (!req.headers['x-forwarded-host'] && req.headers.host) out['x-forwarded-host'] = req.headers.host;
  injectInto(ctx, out as Record<string, string>);
  return out;
}

function clientHeaders(ex: Exchange, upstream: IncomingHttpHeaders, report: (color: Color, name: string, value: number) => void): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = connectionNamed(upstream.connection);
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || HOP_BY_HOP.has(name) || named?.has(name)) continue;
    if (name.startsWith(METRIC_HEADER)) {
      const metric = name.slice(METRIC_HEADER.length);
      const n = Number(value);
      // A preview's metrics are not judged either.
      if (Number.isFinite(n) && METRIC_NAME.test(metric) && !ex.preview) report(ex.color, metric, n);
      continue;
    }
    if (name === 'set-cookie') {
      // The appliance's own cookies are the appliance's: an app cannot pin, stick or sign anyone in.
      const kept = (Array.isArray(value) ? value : [value]).filter((c) => !APPLIANCE_COOKIES.has(c.slice(0, c.indexOf('=')).trim().toLowerCase()));
      if (kept.length > 0) out[name] = kept;
      continue;
    }
    out[name] = value;
  }
  out[COLOR_PIN_HEADER] = ex.color;
  if (ex.retriedFrom) out['x-changelens-retried-from'] = ex.retriedFrom;
  if (ex.setSticky) {
    const sticky = `${STICKY_COOKIE}=${encodeURIComponent(ex.setSticky)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400`;
    const cookies = out['set-cookie'];
    out['set-cookie'] = cookies === undefined ? sticky : [...(Array.isArray(cookies) ? cookies : [cookies]), sticky];
  }
  return out;
}

/** Header names listed in a Connection header are hop-by-hop too. */
function connectionNamed(connection: string | string[] | undefined): Set<string> | null {
  if (connection === undefined) return null;
  const list = (Array.isArray(connection) ? connection.join(',') : connection).toLowerCase();
  if (list === 'keep-alive' || list === 'close') return null;
  return new Set(list.split(',').map((s) => s.trim()).filter(Boolean));
}

function sendJson(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function hasCode(error: unknown, codes: Set<string>): boolean {
  for (let e = error as { code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.code && codes.has(e.code)) return true;
  }
  return false;
}
const isConnectFailure = (error: unknown): boolean => hasCode(error, CONNECT_FAILURES);

type AccessLogWriter = (ex: Exchange, status: number) => void;

/** Chosen once: no per-request `if` when access logging is off. */
function accessLogWriter(log: Logger, mode: AccessLog): AccessLogWriter {
  const write: AccessLogWriter = (ex, status) => {
    const ms = performance.now() - ex.start;
    const line = { ...traceFields(ex.span), method: ex.req.method, url: ex.req.url, status, ms: Math.round(ms * 10) / 10, color: ex.color };
    if (status >= 500) log.warn(line, 'request failed');
    else log.info(line, 'request');
  };
  switch (mode) {
    case 'off': return () => {};
    case 'all': return write;
    case 'errors': return (ex, status) => {
      if (status >= 500 || performance.now() - ex.start > SLOW_REQUEST_MS) write(ex, status);
    };
  }
}

/**
 * What makes a request's end ambiguous between this proxy and the app behind it, beyond what
 * node's parser refuses itself (Content-Length with Transfer-Encoding, two lengths, bad names).
 */
export function framingProblem(req: IncomingMessage): string | null {
  if (req.httpVersion === '1.0' && req.headers['transfer-encoding'] !== undefined) return 'Transfer-Encoding on HTTP/1.0';
  if ((req.method === 'GET' || req.method === 'HEAD') && requestHasBody(req)) return `a body on ${req.method}`;
  return null;
}

/**
 * Reads a request body whole while it stays small, so the app is asked only once it has all of it;
 * past 1 MiB, hands over what was read followed by the rest as it arrives. `reserve` books each
 * chunk of a small body against the proxy's buffer: when it says no, `done(null)`.
 */
function readBody(req: IncomingMessage, reserve: (bytes: number) => boolean, done: (body: Buffer | Readable | null) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const stop = (): void => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.pause();
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    size += chunk.length;
    if (size > BUFFER_BODY_MAX) {
      stop();
      done(Readable.from(streamed(chunks, req), { objectMode: false }));
    } else if (!reserve(chunk.length)) {
      stop();
      done(null);
    }
  };
  const onEnd = (): void => done(Buffer.concat(chunks, size));
  req.on('data', onData);
  req.once('end', onEnd);
}

async function* streamed(head: Buffer[], rest: IncomingMessage): AsyncIterable<Buffer> {
  yield* head;
  for await (const chunk of rest) yield chunk as Buffer;
}

/** A Cookie header without the appliance's secrets (preview credential, dashboard session). */
function withoutApplianceCookies(header: string): string {
  if (!header.includes('changelens-preview') && !header.includes('changelens-admin')) return header;
  return header.split(';').map((c) => c.trim()).filter((c) => {
    const name = c.slice(0, c.indexOf('=')).trim().toLowerCase();
    return name !== PREVIEW_COOKIE && name !== 'changelens-admin';
  }).join('; ');
}
