// Preview credentials: what lets a request be pinned to a colour (lib/contracts/preview.ts). The
// operator asks for one (POST /api/previews, `changelens preview-url`); whoever opens its link gets
// it as a cookie (with the colour's pin, if one was named) and browses that colour. Pinned
// previews are served and counted apart, never judged.
import type { FastifyInstance } from 'fastify';
import type { Color } from '../../lib/config.js';
import { PREVIEW_COOKIE, signPreview, verifyPreview } from '../../lib/contracts/preview.js';
import { CL_ERR_PIN_REFUSED } from '../../lib/errors.js';
import { COLOR_PIN_COOKIE } from '../router.js';
import { actorOf, tlsInFront, trustedProxies } from './auth.js';
import { ADMIN_PREFIX, type AdminApiOptions } from './options.js';

export async function previewRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  const key = o.previews;
  if (!key) return;
  const trusted = trustedProxies(o.config);
  admin.post<{ Body: { color?: Color; minutes?: number } | undefined }>('/api/previews', {
    schema: { body: { type: ['object', 'null'], additionalProperties: false, properties: { color: { type: 'string', enum: ['blue', 'green'] }, minutes: { type: 'integer', minimum: 1, maximum: 10_080 } } } },
  }, async (req, reply) => {
    const minutes = req.body?.minutes ?? 60;
    const expiresAt = Date.now() + minutes * 60_000;
    const credential = signPreview(key, 'preview', expiresAt);
    const color = req.body?.color;
    await o.store.audit({ eventType: 'preview.issued', deploymentId: null, actor: actorOf(req), version: null, details: { color: color ?? null, minutes }, success: true, error: null }).catch(() => {});
    const query = new URLSearchParams({ credential, ...(color ? { color } : {}) });
    return reply.code(201).send({ credential, expiresAt: new Date(expiresAt).toISOString(), url: `${ADMIN_PREFIX}/preview?${query}` });
  });

  // The link itself: no admin session needed (the credential is the permission), so the auth hook lets it through.
  admin.get<{ Querystring: { credential?: string; color?: string; leave?: string } }>('/preview', async (req, reply) => {
    if (req.query.leave === '1') {
      return reply.code(303).header('set-cookie', [`${PREVIEW_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`, `${COLOR_PIN_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0`]).header('location', '/').send();
    }
    const credential = req.query.credential ?? '';
    const color = req.query.color;
    if (verifyPreview(key, credential, Date.now()) !== 'preview' || (color !== undefined && color !== 'blue' && color !== 'green')) {
      throw new CL_ERR_PIN_REFUSED(color === 'blue' || color === 'green' ? color : 'a colour');
    }
    const seconds = Math.max(1, Number(credential.split('.')[2]) - Math.floor(Date.now() / 1000));
    const secure = tlsInFront(o.config, trusted, req) ? '; Secure' : '';
    const cookies = [`${PREVIEW_COOKIE}=${credential}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${seconds}${secure}`];
    if (color) cookies.push(`${COLOR_PIN_COOKIE}=${color}; Path=/; SameSite=Lax; Max-Age=${seconds}${secure}`);
    return reply.code(303).header('set-cookie', cookies).header('location', '/').send();
  });
}
