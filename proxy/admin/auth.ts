// Who may use /_changelens/: the bearer token (compared in constant time), or the dashboard's
// session cookie — which, since a browser sends it on any request, must come with a header only
// the dashboard's own script sends for a change. Registered with fastify-plugin so its hook guards
// every route of the admin scope.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CL_ERR_DEPENDENCY_FAILED, CL_ERR_INVALID_REQUEST, CL_ERR_UNAUTHORIZED } from '../../lib/errors.js';
import { loginPage } from '../dashboard.js';
import { readCookie } from '../router.js';
import { ADMIN_PREFIX, type AdminApiOptions } from './options.js';

/** The dashboard's session: the admin token itself, HttpOnly, sent only to /_changelens/. */
const SESSION_COOKIE = 'changelens-admin';
const SESSION_SECONDS = 12 * 3600;

async function auth(admin: FastifyInstance, o: Pick<AdminApiOptions, 'token' | 'ready'>): Promise<void> {
  const expected = digest(o.token);
  admin.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (path === `${ADMIN_PREFIX}/login`) return;
    const header = req.headers.authorization;
    const bearer = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : null;
    const cookie = bearer === null && req.headers.cookie ? readCookie(req.headers.cookie, SESSION_COOKIE) : undefined;
    // Digests have one length, so the comparison takes the same time whatever was sent.
    if (!timingSafeEqual(digest(bearer ?? cookie ?? ''), expected)) {
      if (req.method === 'GET' && (path === `${ADMIN_PREFIX}/` || path === ADMIN_PREFIX)) {
        return reply.code(401).type('text/html; charset=utf-8').send(loginPage(cookie ? 'That token is not valid (any more).' : 'Sign in with the admin token.'));
      }
      throw new CL_ERR_UNAUTHORIZED();
    }
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
  admin.post<{ Body: { token?: unknown } | undefined }>('/login', async (req, reply) => {
    const token = typeof req.body?.token === 'string' ? req.body.token : '';
    if (!timingSafeEqual(digest(token), expected)) return reply.code(401).type('text/html; charset=utf-8').send(loginPage('That token is not valid.'));
    const secure = req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
    return reply.code(303)
      .header('set-cookie', `${SESSION_COOKIE}=${encodeURIComponent(token)}; Path=${ADMIN_PREFIX}; HttpOnly; SameSite=Strict; Max-Age=${SESSION_SECONDS}${secure}`)
      .header('location', `${ADMIN_PREFIX}/`).send();
  });
}

export const authPlugin = fp(auth, { name: 'changelens-admin-auth' });

/** Whether an Authorization header carries the admin token (constant time), for a route outside the admin scope. */
export function bearerMatches(header: string | string[] | undefined, token: string): boolean {
  const bearer = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
  return timingSafeEqual(digest(bearer), digest(token));
}

/** Who made a change, for the audit log: the x-changelens-actor header when it is a sane name. */
export function actorOf(req: FastifyRequest): string {
  const actor = req.headers['x-changelens-actor'];
  return typeof actor === 'string' && /^[\w.@:-]{1,64}$/.test(actor) ? actor : 'admin';
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
