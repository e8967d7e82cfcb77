// What a colour's release runs with: the active release's env and artifact at boot (from the
// routing snapshot), and a release's own settings and artifact when a colour is started for one.
import { randomBytes } from 'node:crypto';
import { resolve as resolvePath } from 'node:path';
import { configToEnv, envNameOf, loadConfig, type Config } from '../lib/config.js';
import { BUILTIN_ARTIFACT, resolveArtifactEntry, validateReleaseEnv, type ArtifactEntry } from '../lib/contracts/releases.js';
import { unsealEnv } from '../lib/contracts/release-secrets.js';
import { CL_ERR_DATA_DIR, CL_ERR_PROCESS_CONTROL } from '../lib/errors.js';
import type { DataPaths } from '../lib/paths.js';
import type { RoutingSnapshot } from '../lib/routing-snapshot.js';

/**
 * A release's own settings for the colour being started, from `?set=KEY%3DVALUE&set=…`: only what
 * a release may carry (lib/contracts/releases.ts), each validated as at boot.
 */
export function releaseEnv(config: Config, query: string | undefined, secretsKey: Buffer): Record<string, string> {
  const given: Record<string, string> = {};
  for (const pair of new URLSearchParams(query ?? '').getAll('set')) {
    const eq = pair.indexOf('=');
    given[eq > 0 ? pair.slice(0, eq) : pair] = eq > 0 ? pair.slice(eq + 1) : '';
  }
  // Our own settings get the same validation as at boot, on the config this colour will run with
  // (a bad value is a configuration error); then what a release may set at all.
  loadConfig({ env: { ...configToEnv(config), ...Object.fromEntries(Object.entries(given).filter(([k]) => k.startsWith('CHANGELENS_'))) } });
  const checked = validateReleaseEnv(given, '--set');
  if ('error' in checked) throw new CL_ERR_PROCESS_CONTROL(checked.error);
  // Sealed secrets open here, as the colour starts: nowhere else are they plain.
  const opened = unsealEnv(secretsKey, checked.env);
  if ('error' in opened) throw new CL_ERR_PROCESS_CONTROL(`--set.${opened.error}`);
  return { ...opened.env, [envNameOf('releaseId')]: newReleaseId() };
}

/** The env and artifact of the release the routing snapshot says is active (the built-in API if none). */
export function bootRelease(paths: DataPaths, snapshot: RoutingSnapshot, secretsKey: Buffer): { env: Record<string, string>; artifact?: ArtifactEntry } {
  const release = snapshot.release;
  if (!release) return { env: {} };
  const checked = validateReleaseEnv(release.env, `${paths.routing}: release.env`);
  if ('error' in checked) throw new CL_ERR_DATA_DIR(paths.root, checked.error);
  const opened = unsealEnv(secretsKey, checked.env);
  if ('error' in opened) throw new CL_ERR_DATA_DIR(paths.root, `${paths.routing}: release.env.${opened.error}; set CHANGELENS_BACKUP_KEY to the key it was sealed with`);
  checked.env = opened.env;
  if (release.artifact === BUILTIN_ARTIFACT) return { env: checked.env };
  const entry = resolveArtifactEntry(release.artifact);
  if ('error' in entry) throw new CL_ERR_DATA_DIR(paths.root, `active release ${release.version}: ${entry.error}`);
  return { env: checked.env, artifact: entry };
}

/** `?artifact=<dir>`: another app, which must sit under <data>/releases/ (where deploys put them). */
export function releaseArtifact(paths: DataPaths, query: string | undefined): ArtifactEntry | undefined {
  const dir = new URLSearchParams(query ?? '').get('artifact');
  if (dir === null || dir === BUILTIN_ARTIFACT) return undefined;
  const resolved = resolvePath(dir);
  if (!resolved.startsWith(paths.releases + '/')) throw new CL_ERR_PROCESS_CONTROL(`artifact ${dir}: expected a directory under ${paths.releases}`);
  const entry = resolveArtifactEntry(resolved);
  if ('error' in entry) throw new CL_ERR_PROCESS_CONTROL(entry.error);
  return entry;
}

/** Identifies one start of a colour: what was changed at run time belongs to it, not to the next. */
export function newReleaseId(): string {
  return `r-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
