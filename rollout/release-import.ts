// A deploy request's release: the one already recorded, an artifact uploaded before (from CI), a
// path to import, or the built-in API. Checked before anything is copied.
import { existsSync } from 'node:fs';
import { BUILTIN_ARTIFACT } from '../lib/contracts/releases.js';
import { CL_ERR_INVALID_REQUEST, CL_ERR_RELEASE_CONFLICT } from '../lib/errors.js';
import { importArtifact } from './artifacts.js';
import type { Release } from './model.js';
import type { RolloutStore } from './ports.js';
import { uploadedArtifact } from './upload.js';

/** A deploy's artifact that PUT /api/releases/<version>/artifact uploaded before. */
export const UPLOADED = 'uploaded';

export async function prepareRelease(store: RolloutStore, releasesDir: string, req: { version: string; artifact: string | undefined; env: Record<string, string> | undefined; actor: string }): Promise<Release> {
  const existing = await store.release(req.version);
  const uploaded = req.artifact === UPLOADED ? uploadedArtifact(releasesDir, req.version) : null;
  if (req.artifact === UPLOADED && uploaded === null) throw new CL_ERR_INVALID_REQUEST(`body/artifact: no artifact was uploaded for ${req.version} (PUT /_changelens/api/releases/${req.version}/artifact first)`);
  if (existing && req.artifact !== undefined && !(uploaded !== null && existing.artifact === uploaded)) throw new CL_ERR_RELEASE_CONFLICT(req.version, 'artifact');
  if (existing && existing.artifact !== BUILTIN_ARTIFACT && !existsSync(existing.artifact)) {
    throw new CL_ERR_INVALID_REQUEST(`release ${req.version}: its artifact was pruned from releases/; upload it again`);
  }
  return store.putRelease({
    version: req.version,
    artifact: existing?.artifact ?? uploaded ?? (await importArtifact(req.artifact ?? BUILTIN_ARTIFACT, releasesDir, req.version)),
    env: req.env ?? existing?.env ?? {},
    createdBy: req.actor,
  });
}
