// The package's root directory, found from this file whether it runs from source (vitest) or from
// dist/ (node): the nearest parent holding our package.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'changelens') return dir;
    if (dirname(dir) === dir) throw new Error(`changelens package.json not found above ${start}`);
  }
}

export const packageRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
/** Built JavaScript; pm2 starts the mains from here. */
export const distDir = join(packageRoot, 'dist');
export const migrationsDir = join(packageRoot, 'migrations');
export const packageVersion = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
