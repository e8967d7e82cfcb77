// The admin API's plugins with fastify's inject(), no appliance: who gets in (token, session
// cookie, CSRF header, not before the rollout state is loaded), and deploy requests checked against
// the same ranges as the settings. The controller, store and supervisor link are fakes; the routes
// against a real appliance are the end-to-end tests'.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewAuditEvent } from '../../lib/audit.js';
import { loadConfig, rangeOf } from '../../lib/config.js';
import { APP_CONTROL_HEADER, appControlToken } from '../../lib/contracts/app-control.js';
import { releaseSecretsKey, unsealEnv } from '../../lib/contracts/release-secrets.js';
import { createHttpServer } from '../../lib/http-server.js';
import { createLogger } from '../../lib/logger.js';
import type { RolloutController, RolloutStore } from '../../rollout/index.js';
import type { BackupLink } from '../supervisor-link.js';
import { ADMIN_PREFIX, DEPLOY_FIELDS, registerAdminApi } from './index.js';

const TOKEN = 'admin-token-0123456789';
const deployed: unknown[] = [];
let ready = true;
const app = createHttpServer(createLogger('admin-test', { level: 'silent' }));

const controller = {
  status: () => ({ active: { version: 'initial', color: 'blue' }, routing: {}, deployment: null }),
  notifications: () => [],
  deploy: async (request: unknown) => { deployed.push(request); return { id: 'd1' }; },
  pause: async (actor: string, reason?: string) => ({ paused: true, actor, reason }),
} as unknown as RolloutController;
const audits: NewAuditEvent[] = [];
const store = { pointers: async () => ({ active: 'initial', lastGood: 'initial' }), audit: async (e: NewAuditEvent) => { audits.push(e); } } as unknown as RolloutStore;
/** Blue's API, as the colour controls reach it: what it was sent, with which headers. Green is down. */
const blueSaw: { method: string; url: string; control: string | undefined; body: string }[] = [];
const blue = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c));
  req.on('end', () => {
    blueSaw.push({ method: req.method!, url: req.url!, control: req.headers[APP_CONTROL_HEADER] as string | undefined, body });
    res.writeHead(req.url === '/api/regression/db' ? 400 : 200, { 'content-type': 'application/json' }).end(JSON.stringify({ color: 'blue', regressions: [] }));
  });
});

beforeAll(async () => {
  await new Promise<void>((resolve) => blue.listen(0, '127.0.0.1', resolve));
  const downPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address() as AddressInfo; s.close(() => resolve(port)); });
  });
  await registerAdminApi(app, {
    token: TOKEN, controller, store, config: loadConfig({ env: {} }), releasesDir: '/nonexistent',
    ready: () => ready, backups: {} as BackupLink, live: () => [], holdTraffic: () => {},
    metrics: async () => ({ contentType: 'text/plain', body: 'x 1\n' }),
    upstreams: { blue: `http://127.0.0.1:${(blue.address() as AddressInfo).port}`, green: `http://127.0.0.1:${downPort}` },
    workerUpstreams: { blue: `http://127.0.0.1:${(blue.address() as AddressInfo).port}`, green: `http://127.0.0.1:${downPort}` },
  });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  blue.close();
});

const bearer = { authorization: `Bearer ${TOKEN}` };
const deploy = (body: Record<string, unknown>) => app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/api/deployments`, headers: { ...bearer, 'content-type': 'application/json' }, payload: body });

describe('who gets in', () => {
  it('nothing without the token: 401 in the error shape, the sign-in page for the dashboard', async () => {
    const api = await app.inject({ url: `${ADMIN_PREFIX}/api/status` });
    expect(api.statusCode).toBe(401);
    expect(api.json()).toMatchObject({ code: 'CL_ERR_UNAUTHORIZED' });
    const wrong = await app.inject({ url: `${ADMIN_PREFIX}/api/status`, headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(401);
    const page = await app.inject({ url: `${ADMIN_PREFIX}/` });
    expect(page.statusCode).toBe(401);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect((await app.inject({ url: `${ADMIN_PREFIX}/metrics` })).statusCode).toBe(401);
  });

  it('the bearer token reads and changes', async () => {
    expect((await app.inject({ url: `${ADMIN_PREFIX}/api/status`, headers: bearer })).json()).toMatchObject({ schemaVersion: 1, active: { version: 'initial' } });
    expect((await app.inject({ url: `${ADMIN_PREFIX}/metrics`, headers: bearer })).body).toBe('x 1\n');
  });

  it('the sign-in form sets an HttpOnly session cookie; a change made with it needs the CSRF header', async () => {
    const bad = await app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/login`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=nope' });
    expect(bad.statusCode).toBe(401);
    const login = await app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/login`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${TOKEN}` });
    expect(login.statusCode).toBe(303);
    const cookie = String(login.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly; SameSite=Strict/);
    const session = { cookie: cookie.split(';')[0]! };
    expect((await app.inject({ url: `${ADMIN_PREFIX}/api/status`, headers: session })).statusCode).toBe(200);
    const noCsrf = await app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/api/deployment/pause`, headers: session });
    expect(noCsrf.statusCode).toBe(400);
    expect(noCsrf.json().message).toContain('x-changelens-csrf');
    const withCsrf = await app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/api/deployment/pause`, headers: { ...session, 'x-changelens-csrf': '1' } });
    // The audit's actor is the credential: the dashboard's session here.
    expect(withCsrf.json()).toEqual({ paused: true, actor: 'dashboard' });
  });

  it('the session is a random id, not the token; signing out ends it on the server; the token itself is no session', async () => {
    const login = await app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/login`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${TOKEN}` });
    const cookie = String(login.headers['set-cookie']);
    expect(cookie).not.toContain(TOKEN);
    expect(cookie).not.toContain('Secure'); // plain http, no trusted proxy in front
    const session = { cookie: cookie.split(';')[0]! };
    expect(session.cookie).toMatch(/^changelens-admin=[A-Za-z0-9_-]{43}$/);
    const other = String((await app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/login`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${TOKEN}` })).headers['set-cookie']).split(';')[0]!;
    expect(other).not.toBe(session.cookie);
    expect((await app.inject({ url: `${ADMIN_PREFIX}/api/status`, headers: { cookie: `changelens-admin=${TOKEN}` } })).statusCode).toBe(401);
    const out = await app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/logout`, headers: { ...session, 'x-changelens-csrf': '1', 'content-type': 'application/json' }, payload: '{}' });
    expect(out.statusCode).toBe(200);
    expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0/);
    expect((await app.inject({ url: `${ADMIN_PREFIX}/api/status`, headers: session })).statusCode).toBe(401);
    // Another session is untouched.
    expect((await app.inject({ url: `${ADMIN_PREFIX}/api/status`, headers: { cookie: other } })).statusCode).toBe(200);
  });

  it('every answer forbids inline and foreign script, framing and sniffing; the page has no inline script; its static files need no session', async () => {
    const page = await app.inject({ url: `${ADMIN_PREFIX}/`, headers: bearer });
    const api = await app.inject({ url: `${ADMIN_PREFIX}/api/status` });
    for (const res of [page, api]) {
      expect(res.headers['content-security-policy']).toMatch(/script-src 'self';.*frame-ancestors 'none'/);
      expect(res.headers['content-security-policy']).not.toMatch(/script-src[^;]*unsafe-inline/);
      expect(res.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' });
    }
    expect(page.body).not.toMatch(/<script>(?!<)/);
    expect(page.body).toContain('<script src="/_changelens/assets/dashboard.js"></script>');
    const script = await app.inject({ url: `${ADMIN_PREFIX}/assets/dashboard.js` });
    expect([script.statusCode, script.headers['content-type']]).toEqual([200, 'application/javascript; charset=utf-8']);
    expect((await app.inject({ url: `${ADMIN_PREFIX}/assets/uPlot.min.css` })).statusCode).toBe(200);
    expect((await app.inject({ url: `${ADMIN_PREFIX}/assets/secrets.json` })).statusCode).toBe(404);
  });

  it('the API waits for the rollout state (503); nothing under the prefix reaches an app', async () => {
    ready = false;
    try {
      expect((await app.inject({ url: `${ADMIN_PREFIX}/api/status`, headers: bearer })).statusCode).toBe(503);
    } finally {
      ready = true;
    }
    expect((await app.inject({ url: `${ADMIN_PREFIX}/api/nothing-here`, headers: bearer })).statusCode).toBe(404);
  });
});

describe('deploy requests', () => {
  const numeric = Object.entries(DEPLOY_FIELDS).filter(([, s]) => s.type === 'integer' || s.type === 'number').map(([k]) => k as Parameters<typeof rangeOf>[0]);

  it('every numeric field takes exactly the range of the setting of the same name', () => {
    expect(numeric.length).toBeGreaterThanOrEqual(12);
    for (const key of numeric) {
      const { min, max, integer } = rangeOf(key);
      expect(DEPLOY_FIELDS[key as keyof typeof DEPLOY_FIELDS], key).toEqual({ type: integer ? 'integer' : 'number', minimum: min, maximum: max });
    }
  });

  it('a value outside a field\'s range is a 400 naming the field; one inside is deployed', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(...numeric), fc.boolean(), async (key, inside) => {
      const { max, integer } = rangeOf(key);
      const value = inside ? max : max + (integer ? 1 : max);
      // A long step, so any window fits in it (windowSeconds ≤ stepSeconds is checked too).
      const body = { version: 'v1', strategy: 'canary', stepSeconds: 86_400, [key]: key === 'stepSeconds' && inside ? Math.max(value, 60) : value };
      const before = deployed.length;
      const res = await deploy(body);
      if (inside) {
        expect(res.statusCode, `${key}=${value}: ${res.body}`).toBe(202);
        expect(deployed.length).toBe(before + 1);
      } else {
        expect(res.statusCode).toBe(400);
        expect(res.json().message).toContain(key);
        expect(deployed.length).toBe(before);
      }
    }), { numRuns: 40 });
  });

  it('an unknown field, steps on a blue/green, a window longer than the step: 400 naming what is wrong', async () => {
    expect((await deploy({ version: 'v1', colour: 'green' })).json().message).toMatch(/colour/);
    expect((await deploy({ version: 'v1', strategy: 'bluegreen', steps: [50, 100] })).json().message).toMatch(/^body\/steps: only a canary has steps/);
    expect((await deploy({ version: 'v1', stepSeconds: 5, windowSeconds: 10 })).json().message).toMatch(/^body\/windowSeconds: expected at most stepSeconds \(5\)/);
    expect((await deploy({ version: '../etc' })).statusCode).toBe(400);
  });

  it('warm-up and mirror fields: paths checked, copies refused where they make no sense, defaults filled in', async () => {
    const message = async (body: Record<string, unknown>) => (await deploy({ version: 'v1', ...body })).json().message as string;
    expect(await message({ warmupPaths: '/api/data,/_changelens/api/status' })).toMatch(/^body\/warmupPaths: path "\/_changelens\/api\/status"/);
    expect(await message({ warmupPaths: '/a/../_changelens' })).toMatch(/^body\/warmupPaths: path/);
    expect(await message({ mirrorPercent: 101 })).toMatch(/mirrorPercent/);
    expect(await message({ strategy: 'bluegreen', mirrorPercent: 10 })).toMatch(/^body\/mirrorPercent: blue\/green/);
    expect(await message({ mirror: false, mirrorPercent: 10 })).toMatch(/^body\/mirrorPercent: copies of live requests are off/);
    const before = deployed.length;
    expect((await deploy({ version: 'v1', warmupSeconds: 9, warmupPaths: '/api/data', mirrorPercent: 25 })).statusCode).toBe(202);
    expect((deployed[before] as { plan: object }).plan).toMatchObject({ warmupSeconds: 9, warmupPaths: ['/api/data'], warmupMirror: true, mirrorPercent: 25 });
    // An analysis load's paths are the synthetic warm-up's too, unless told otherwise; mirror false turns every copy off.
    expect((await deploy({ version: 'v1', analysisLoad: '20,/api/items', mirror: false })).statusCode).toBe(202);
    expect((deployed[before + 1] as { plan: object }).plan).toMatchObject({ warmupSeconds: 5, warmupPaths: ['/api/items'], warmupMirror: false });
    expect((deployed[before + 1] as { plan: { mirrorPercent?: number } }).plan.mirrorPercent).toBeUndefined();
  });

  it('an action\'s body is nothing or {"reason"}: anything else is a 400 naming the field', async () => {
    const act = (payload: unknown) => app.inject({ method: 'POST', url: `${ADMIN_PREFIX}/api/deployment/pause`, headers: { ...bearer, 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
    expect((await act({ reason: 'lunch' })).json()).toEqual({ paused: true, actor: 'token', reason: 'lunch' });
    expect((await act({ reason: 5 })).json().message).toMatch(/^body\/reason/);
    expect((await act({ why: 'x' })).json().message).toMatch(/^body\/why: unknown field/);
  });
});

describe('a release\'s secrets', () => {
  it('are sealed as they arrive: the deployment carries them sealed, never plain; one given twice or without a key is refused', async () => {
    const key = releaseSecretsKey('backup-key-0123456789abcdef');
    const sealing = createHttpServer(createLogger('admin-test', { level: 'silent' }));
    const taken: { env?: Record<string, string> }[] = [];
    await registerAdminApi(sealing, {
      token: TOKEN, store, config: loadConfig({ env: {} }), releasesDir: '/nonexistent', releaseSecretsKey: key,
      controller: { ...controller, deploy: async (r: { env?: Record<string, string> }) => { taken.push(r); return { id: 'd2' }; } } as unknown as RolloutController,
      ready: () => true, backups: {} as BackupLink, live: () => [], holdTraffic: () => {},
      metrics: async () => ({ contentType: 'text/plain', body: '' }), upstreams: { blue: 'http://127.0.0.1:9', green: 'http://127.0.0.1:9' }, workerUpstreams: { blue: 'http://127.0.0.1:9', green: 'http://127.0.0.1:9' },
    });
    await sealing.ready();
    try {
      const send = (payload: object) => sealing.inject({ method: 'POST', url: `${ADMIN_PREFIX}/api/deployments`, headers: { ...bearer, 'content-type': 'application/json' }, payload });
      expect((await send({ version: 'v9', env: { MODE: 'fast' }, secrets: { DB_PASSWORD: 'hunter2-hunter2' } })).statusCode).toBe(202);
      const env = taken[0]!.env!;
      expect(env.MODE).toBe('fast');
      expect(env.DB_PASSWORD).toMatch(/^clsecret:v1:/);
      expect(JSON.stringify(taken)).not.toContain('hunter2');
      expect(unsealEnv(key, env)).toEqual({ env: { MODE: 'fast', DB_PASSWORD: 'hunter2-hunter2' } });
      const twice = await send({ version: 'v9', env: { DB_PASSWORD: 'a' }, secrets: { DB_PASSWORD: 'b' } });
      expect([twice.statusCode, twice.json().message]).toEqual([400, 'body/secrets.DB_PASSWORD: also in body/env; give it once']);
      expect((await send({ version: 'v9', secrets: { CHANGELENS_ADMIN_TOKEN: 'x' } })).json().message).toContain('body/secrets.CHANGELENS_ADMIN_TOKEN');
    } finally {
      await sealing.close();
    }
    // The shared server has no key: it refuses rather than keep a secret plain.
    const refused = await deploy({ version: 'v9', secrets: { DB_PASSWORD: 'x' } });
    expect([refused.statusCode, refused.json().message]).toEqual([400, expect.stringContaining('cannot seal secrets')]);
  });
});

describe('a colour\'s controls (the built-in API\'s regressions and metrics reset)', () => {
  const control = (method: 'GET' | 'POST' | 'DELETE', path: string, payload?: unknown, headers: Record<string, string> = bearer) =>
    app.inject({ method, url: `${ADMIN_PREFIX}/api/colors${path}`, headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) }, ...(payload === undefined ? {} : { payload: payload as object }) });

  it('need the admin token: without it nothing reaches the colour', async () => {
    blueSaw.length = 0;
    expect((await control('POST', '/blue/regressions/errors', { intensity: 1 }, {})).statusCode).toBe(401);
    expect((await control('POST', '/blue/metrics/reset', undefined, { authorization: 'Bearer nope' })).statusCode).toBe(401);
    expect(blueSaw).toEqual([]);
  });

  it('reach the colour with the control credential derived from the admin token, pass its answer back and are audited by actor', async () => {
    blueSaw.length = 0;
    audits.length = 0;
    const set = await control('POST', '/blue/regressions/errors', { intensity: 0.5 }, { ...bearer, 'x-changelens-actor': 'ci-bot' });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toEqual({ color: 'blue', regressions: [] });
    expect((await control('DELETE', '/blue/regressions/errors')).statusCode).toBe(200);
    expect((await control('POST', '/blue/metrics/reset')).statusCode).toBe(200);
    expect((await control('GET', '/blue/regressions')).statusCode).toBe(200);
    expect(blueSaw).toEqual([
      { method: 'POST', url: '/api/regression/errors', control: appControlToken(TOKEN, 'blue'), body: '{"intensity":0.5}' },
      { method: 'DELETE', url: '/api/regression/errors', control: appControlToken(TOKEN, 'blue'), body: '' },
      { method: 'POST', url: '/api/metrics/reset', control: appControlToken(TOKEN, 'blue'), body: '' },
      // A read needs no credential: none is handed to whatever runs there.
      { method: 'GET', url: '/api/regression', control: undefined, body: '' },
    ]);
    // Each colour its own: what runs on one cannot control the other.
    expect(appControlToken(TOKEN, 'blue')).not.toBe(appControlToken(TOKEN, 'green'));
    expect(audits.map((a) => [a.eventType, a.actor, a.details, a.success])).toEqual([
      // Who claims to act is kept as a claim, after the credential that let it in.
      ['regression.set', 'token as ci-bot', { color: 'blue', type: 'errors', intensity: 0.5 }, true],
      ['regression.clear', 'token', { color: 'blue', type: 'errors' }, true],
      ['metrics.reset', 'token', { color: 'blue' }, true],
    ]);
  });

  it('a refusal by the colour is passed back and audited as failed; bad colour, type or body is a 400 naming the field; a colour that is not running is a 409', async () => {
    audits.length = 0;
    expect((await control('POST', '/blue/regressions/db', { intensity: 5 })).statusCode).toBe(400);
    expect(audits.map((a) => [a.eventType, a.success, a.error])).toEqual([['regression.set', false, 'HTTP 400']]);
    const red = await control('POST', '/red/regressions/errors', { intensity: 1 });
    expect([red.statusCode, red.json().message]).toEqual([400, expect.stringContaining('params/color')]);
    expect((await control('POST', '/blue/regressions/memory', { intensity: 1 })).json().message).toContain('params/type');
    // An unknown field is dropped (fastify's schema), never passed on.
    blueSaw.length = 0;
    await control('POST', '/blue/regressions/errors', { intensity: 1, extra: 1 });
    expect(blueSaw.map((x) => x.body)).toEqual(['{"intensity":1}']);
    expect((await control('POST', '/blue/regressions/errors', {})).json().message).toContain('intensity');
    const down = await control('POST', '/green/regressions/errors', { intensity: 1 });
    expect(down.statusCode).toBe(409);
    expect(down.json()).toMatchObject({ code: 'CL_ERR_COLOR_NOT_RUNNING', message: 'api-green is not running' });
  });

  it('the worker\'s regressions go to the colour\'s worker the same way: its credential on a change, audited, its own types only', async () => {
    audits.length = 0;
    blueSaw.length = 0;
    expect((await control('POST', '/blue/worker-regressions/errors', { intensity: 0.2 })).statusCode).toBe(200);
    expect((await control('DELETE', '/blue/worker-regressions/errors')).statusCode).toBe(200);
    expect((await control('GET', '/blue/worker-regressions')).statusCode).toBe(200);
    expect(blueSaw).toEqual([
      { method: 'POST', url: '/api/worker-regression/errors', control: appControlToken(TOKEN, 'blue'), body: '{"intensity":0.2}' },
      { method: 'DELETE', url: '/api/worker-regression/errors', control: appControlToken(TOKEN, 'blue'), body: '' },
      { method: 'GET', url: '/api/worker-regression', control: undefined, body: '' },
    ]);
    expect(audits.map((a) => [a.eventType, a.details, a.success])).toEqual([
      ['worker-regression.set', { color: 'blue', type: 'errors', intensity: 0.2 }, true],
      ['worker-regression.clear', { color: 'blue', type: 'errors' }, true],
    ]);
    expect((await control('POST', '/blue/worker-regressions/cpu', { intensity: 1 })).json().message).toContain('params/type');
    const down = await control('POST', '/green/worker-regressions/crash', { intensity: 0.1 });
    expect(down.json()).toMatchObject({ code: 'CL_ERR_COLOR_NOT_RUNNING', message: 'worker-green is not running' });
  });
});

describe('failed sign-ins and wrong tokens', () => {
  const throttled = createHttpServer(createLogger('admin-test', { level: 'silent' }));
  const seen: NewAuditEvent[] = [];
  beforeAll(async () => {
    await registerAdminApi(throttled, {
      token: TOKEN, controller, config: loadConfig({ env: {} }), releasesDir: '/nonexistent',
      store: { ...store, audit: async (e: NewAuditEvent) => { seen.push(e); } } as unknown as RolloutStore,
      ready: () => true, backups: {} as BackupLink, live: () => [], holdTraffic: () => {},
      metrics: async () => ({ contentType: 'text/plain', body: '' }), upstreams: { blue: 'http://127.0.0.1:9', green: 'http://127.0.0.1:9' }, workerUpstreams: { blue: 'http://127.0.0.1:9', green: 'http://127.0.0.1:9' },
    });
    await throttled.ready();
  });
  afterAll(() => throttled.close());
  const from = (remoteAddress: string, headers: Record<string, string> = {}) => throttled.inject({ url: `${ADMIN_PREFIX}/api/status`, headers, remoteAddress });

  it('past 20 failures in a minute a client\'s wrong tokens get 429 + Retry-After, unaudited; the right token still gets in (no lockout from behind a shared address); the first failure and the block are audited', async () => {
    // Sign-in form failures count as wrong tokens do.
    const form = await throttled.inject({ method: 'POST', url: `${ADMIN_PREFIX}/login`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=guess', remoteAddress: '10.0.0.5' });
    expect(form.statusCode).toBe(401);
    for (let i = 2; i <= 20; i++) expect((await from('10.0.0.5', { authorization: `Bearer guess-${i}` })).statusCode).toBe(401);
    for (let i = 21; i <= 30; i++) {
      const refused = await from('10.0.0.5', { authorization: `Bearer guess-${i}` });
      expect(refused.statusCode).toBe(429);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(refused.json()).toMatchObject({ code: 'CL_ERR_TOO_MANY_FAILURES', error: 'Too Many Requests' });
    }
    expect((await from('10.0.0.5', bearer)).statusCode).toBe(200);
    expect((await from('10.0.0.6', { authorization: 'Bearer nope' })).statusCode).toBe(401);
    expect(seen.map((e) => [e.eventType, e.actor, e.details.client, e.details.failures, e.success])).toEqual([
      ['auth.failed', 'anonymous', '10.0.0.5', 1, false],
      ['auth.blocked', 'anonymous', '10.0.0.5', 20, false],
      ['auth.failed', 'anonymous', '10.0.0.6', 1, false],
    ]);
  });
});

describe('the session cookie behind a proxy that ends TLS', () => {
  it('is Secure only when a configured proxy says the client came over https', async () => {
    const behind = createHttpServer(createLogger('admin-test', { level: 'silent' }));
    await registerAdminApi(behind, {
      token: TOKEN, controller, store, config: loadConfig({ env: { CHANGELENS_TRUSTED_PROXIES: '10.0.0.9' } }), releasesDir: '/nonexistent',
      ready: () => true, backups: {} as BackupLink, live: () => [], holdTraffic: () => {},
      metrics: async () => ({ contentType: 'text/plain', body: '' }), upstreams: { blue: 'http://127.0.0.1:9', green: 'http://127.0.0.1:9' }, workerUpstreams: { blue: 'http://127.0.0.1:9', green: 'http://127.0.0.1:9' },
    });
    await behind.ready();
    try {
      const login = (remoteAddress: string) => behind.inject({ method: 'POST', url: `${ADMIN_PREFIX}/login`, remoteAddress, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' }, payload: `token=${TOKEN}` });
      expect(String((await login('10.0.0.9')).headers['set-cookie'])).toMatch(/; Secure$/);
      expect(String((await login('10.0.0.8')).headers['set-cookie'])).not.toContain('Secure');
    } finally {
      await behind.close();
    }
  });
});
