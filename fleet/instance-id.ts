// Which instance of a fleet this appliance is: CHANGELENS_INSTANCE_ID, else a name generated on its
// first boot in external mode and kept in its data dir, so a restart is the same instance again.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { newId } from '../lib/ids.js';

const VALID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The instance's id: the setting, else the one kept in `<stateDir>/instance-id` (made on first call). */
export function instanceId(setting: string | undefined, stateDir: string): string {
  if (setting !== undefined) return setting;
  const file = join(stateDir, 'instance-id');
  if (existsSync(file)) {
    const kept = readFileSync(file, 'utf8').trim();
    if (VALID.test(kept)) return kept;
  }
  const made = newId('inst');
  writeFileAtomic(file, `${made}\n`, 0o644);
  return made;
}
