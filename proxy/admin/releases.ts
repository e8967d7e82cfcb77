// Releases: the list with the active and last-good pointers, and the upload of a release's app
// (a .tar.gz, streamed and bounded) that CI deploys next with artifact "uploaded".
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { CL_ERR_INVALID_REQUEST } from '../../lib/errors.js';
import { receiveArtifact } from '../../rollout/upload.js';
import { actorOf } from './auth.js';
import { VERSION_SCHEMA } from './deployments.js';
import type { AdminApiOptions } from './options.js';

export async function releaseRoutes(admin: FastifyInstance, o: AdminApiOptions): Promise<void> {
  admin.get('/api/releases', async () => ({ releases: await o.store.releases(), pointers: await o.store.pointers() }));

  admin.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/octet-stream'], (_req, payload, done) => done(null, payload));
  admin.put<{ Params: { version: string }; Headers: { 'x-changelens-sha256'?: string } }>('/api/releases/:version/artifact', {
    schema: {
      params: { type: 'object', properties: { version: VERSION_SCHEMA } },
      headers: { type: 'object', required: ['x-changelens-sha256'], properties: { 'x-changelens-sha256': { type: 'string', pattern: '^[0-9a-fA-F]{64}$' } } },
    },
  }, async (req, reply) => {
    if (!(req.body instanceof Readable)) throw new CL_ERR_INVALID_REQUEST('body: expected the artifact as application/gzip (a .tar.gz)');
    const result = await receiveArtifact(req.body, { releasesDir: o.releasesDir, version: req.params.version, sha256: req.headers['x-changelens-sha256']!, maxBytes: o.config.artifactMaxMb * 1024 * 1024 });
    await o.store.audit({ eventType: 'upload', deploymentId: null, actor: actorOf(req), version: result.version, details: { sha256: result.sha256, bytes: result.bytes, unchanged: result.unchanged }, success: true, error: null });
    return reply.code(result.unchanged ? 200 : 201).send(result);
  });
}
