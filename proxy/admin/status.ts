// What the appliance's rollout state is now (the CLI's and the dashboard's), and the Prometheus
// exposition.
import type { FastifyInstance } from 'fastify';
import type { AdminApiOptions } from './options.js';

export async function statusRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  admin.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await o.metrics();
    return reply.type(contentType).send(body);
  });
  // /healthz?all=1's details, for the dashboard (its session cookie only goes to /_changelens/).
  admin.get('/api/health', async () => (o.healthDetails ? o.healthDetails() : { status: 'ok' }));
  admin.get('/api/status', async () => {
    const s = o.controller.status();
    const notifications = o.controller.notifications();
    return { schemaVersion: 1, ...s, pointers: await o.store.pointers(), ...(o.fleet ? { fleet: await o.fleet() } : {}), ...(notifications.length ? { notifications } : {}) };
  });
}
