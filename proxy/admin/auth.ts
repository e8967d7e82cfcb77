// Who may use /_changelens/: the bearer token (compared in constant time), or the dashboard's
// session cookie — which, since a browser sends it on any request, must come with a header only
// the dashboard's own script sends for a change. Registered with fastify-plugin so its hook guards
// every route of the admin scope.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CL_ERR_DEPENDENCY_FAILED, CL_ERR_INVALID_REQUEST, CL_ERR_UNAUTHORIZED, errorBody, type ChangeLensError } from '../../lib/errors.js';
import { AuthFailures } from './failed-auth.js';
import { SESSION_SECONDS, Sessions } from './sessions.js';
import { loginPage } from '../dashboard.js';
import { readCookie } from '../router.js';
import { ADMIN_PREFIX, type AdminApiOptions } from './options.js';

/** The dashboard's session: a random id (sessions.ts), HttpOnly, sent only to /_changelens/. */
const SESSION_COOKIE = 'changelens-admin';

/** Sends a refusal: 429 with Retry-After when the client is past the limit, else the given 401. */
function refuse(reply: FastifyReply, tooMany: ChangeLensError | null): FastifyReply | null {
  if (!tooMany) return null;
  const seconds = /for (\d+) s$/.exec(tooMany.message)?.[1] ?? '60';
  return reply.code(429).header('retry-after', seconds).send(errorBody(tooMany));
}

async function auth(admin: FastifyInstance, o: Pick<AdminApiOptions, 'token' | 'ready' | 'store' | 'authFailures' | 'config'>): Promise<void> {
  const expected = digest(o.token);
  const failures = o.authFailures ?? new AuthFailures(o.store);
  const sessions = new Sessions();
  const trusted = trustedProxies(o.config);
  // TLS ends in front of us: always on the cloud platforms; elsewhere only a configured proxy is believed.
  const cookie = (value: string, maxAge: number, req: FastifyRequest): string =>
    `${SESSION_COOKIE}=${value}; Path=${ADMIN_PREFIX}; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${tlsInFront(o.config, trusted, req) ? '; Secure' : ''}`;

  admin.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    // Signing in needs no session; the page's static files (uPlot, its script) hold nothing secret.
    // A preview link carries its own permission (a signed credential, checked by its route).
    if (path === `${ADMIN_PREFIX}/login` || (req.method === 'GET' && (path.startsWith(`${ADMIN_PREFIX}/assets/`) || path === `${ADMIN_PREFIX}/preview`))) return;
    const header = req.headers.authorization;
    const bearer = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : null;
    const session = bearer === null && req.headers.cookie ? readCookie(req.headers.cookie, SESSION_COOKIE) : undefined;
    // Digests have one length, so the comparison takes the same time whatever was sent.
    const allowed = bearer !== null ? timingSafeEqual(digest(bearer), expected) : sessions.valid(session);
    if (!allowed) {
      const cookie = session;
      // Opening the dashboard without a session is how one signs in, not a failure.
      const signInPage = req.method === 'GET' && (path === `${ADMIN_PREFIX}/` || path === ADMIN_PREFIX);
      if (!signInPage || cookie !== undefined) {
        const tooMany = refuse(reply, failures.failed(req, path, req.log));
        if (tooMany) return tooMany;
      }
      if (signInPage) {
        // A link to a deployment's page (a chat notification's) leads there once signed in.
        return reply.code(401).type('text/html; charset=utf-8').send(loginPage(cookie ? 'That token is not valid (any more).' : 'Sign in with the admin token.', deploymentOf(new URLSearchParams(req.url.split('?')[1] ?? '').get('deployment'))));
      }
      throw new CL_ERR_UNAUTHORIZED();
    }
    credentialOf.set(req.raw, bearer !== null ? 'token' : 'dashboard');
    // A session cookie rides along on any request the browser makes: a change must also carry a
    // header that only our page's own script sends (a cross-site form cannot).
    if (bearer === null && req.method !== 'GET' && req.method !== 'HEAD' && req.headers['x-changelens-csrf'] !== '1') {
      throw new CL_ERR_INVALID_REQUEST('header x-changelens-csrf: expected 1 on changes made with the dashboard\'s session (or send Authorization: Bearer)');
    }
    if (!o.ready() && req.url.startsWith(`${ADMIN_PREFIX}/api/`)) throw new CL_ERR_DEPENDENCY_FAILED('rollout state', 'Postgres has not answered the proxy yet', '');
  });

  // A form post, so the token never sits in a URL (history, referrers, logs).
  admin.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  admin.post<{ Body: { token?: unknown; deployment?: unknown } | undefined }>('/login', async (req, reply) => {
    const token = typeof req.body?.token === 'string' ? req.body.token : '';
    const deployment = deploymentOf(req.body?.deployment);
    if (!timingSafeEqual(digest(token), expected)) {
      const tooMany = refuse(reply, failures.failed(req, `${ADMIN_PREFIX}/login`, req.log));
      if (tooMany) return tooMany;
      return reply.code(401).type('text/html; charset=utf-8').send(loginPage('That token is not valid.', deployment));
    }
    return reply.code(303).header('set-cookie', cookie(sessions.create(), SESSION_SECONDS, req)).header('location', `${ADMIN_PREFIX}/${deployment ? `?deployment=${deployment}` : ''}`).send();
  });
  // Signing out ends the session here, not only in the browser. A change: the CSRF header is checked above.
  admin.post('/logout', async (req, reply) => {
    sessions.end(req.headers.cookie ? readCookie(req.headers.cookie, SESSION_COOKIE) : undefined);
    return reply.header('set-cookie', cookie('', 0, req)).send({ signedOut: true });
  });
}

export const authPlugin = fp(auth, { name: 'changelens-admin-auth' });

/** The form of a deployment id a client may hand back (newId's, with room). */
export const DEPLOYMENT_ID = /^[A-Za-z0-9-]{1,80}$/;

/** A deployment id carried through signing in; anything else is dropped (it lands in a Location header and a page). */
function deploymentOf(v: unknown): string | undefined {
  return typeof v === 'string' && DEPLOYMENT_ID.test(v) ? v : undefined;
}

/** The proxies whose X-Forwarded-Proto is believed (CHANGELENS_TRUSTED_PROXIES). */
export function trustedProxies(config: AdminApiOptions['config']): Set<string> {
  return new Set((config.trustedProxies ?? '').split(',').map((a) => a.trim().replace(/^::ffff:/, '')).filter(Boolean));
}

/**
 * Whether TLS ends in front of us for this request: always on the cloud platforms; elsewhere only a
 * configured proxy is believed (an IPv4 peer may show as ::ffff:a.b.c.d when listening on ::).
 */
export function tlsInFront(config: AdminApiOptions['config'], trusted: ReadonlySet<string>, req: { socket: { remoteAddress?: string | undefined }; headers: Record<string, string | string[] | undefined> }): boolean {
  if (config.platform === 'cloudrun' || config.platform === 'cloudbase' || config.cloudRunService !== undefined) return true;
  const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  return trusted.has(peer) && req.headers['x-forwarded-proto'] === 'https';
}

/** Whether an Authorization header carries the admin token (constant time), for a route outside the admin scope. */
export function bearerMatches(header: string | string[] | undefined, token: string): boolean {
  const bearer = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
  return timingSafeEqual(digest(bearer), digest(token));
}

/** Which credential let a request in: the admin token, or the dashboard's session. */
const credentialOf = new WeakMap<object, 'token' | 'dashboard'>();

/**
 * Who made a change, for the audit log: the credential that let the request in — what the
 * appliance knows. A name the caller gives (x-changelens-actor: the CLI sends cli:<user>) is kept
 * as what it claims to be, after it: "token as cli:alice".
 */
export function actorOf(req: FastifyRequest): string {
  const credential = credentialOf.get(req.raw) ?? 'token';
  const claimed = req.headers['x-changelens-actor'];
  return typeof claimed === 'string' && /^[\w.@:-]{1,64}$/.test(claimed) ? `${credential} as ${claimed}` : credential;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
