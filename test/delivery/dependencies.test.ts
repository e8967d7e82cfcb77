// Every package the shipped code imports at run time is one `npm ci --omit=dev` (the image's
// `npm prune --omit=dev`) installs. The image once died at boot on `undici`, a devDependency that
// product code imported; the image test (test/image) boots the pruned tree, this finds it in a second.
// "Shipped code" is what the entry points reach: the `changelens` command and the programs pm2 runs.
// The bench:* npm scripts are development tools run from a checkout (bench:proxy compares with the
// devDependency @fastify/http-proxy); what the CLI runs of bench/ is reached through the CLI.
import { existsSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/package-root.js';

interface PackageJson { bin?: Record<string, string>; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }
interface Lockfile { packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }> }

const dist = join(packageRoot, 'dist');
const readJson = <T>(path: string): T => JSON.parse(readFileSync(join(packageRoot, path), 'utf8')) as T;

/** The `changelens` command and every program the ecosystem declares under dist/. */
function entryPoints(pkg: PackageJson): string[] {
  const ecosystem = readFileSync(join(dist, 'ecosystem.config.js'), 'utf8');
  const scripts = [...ecosystem.matchAll(/`\$\{distDir\}\/([^`]+\.js)`/g)].map((m) => join(dist, m[1]!));
  return [...Object.values(pkg.bin ?? {}).map((p) => join(packageRoot, p)), join(dist, 'ecosystem.config.js'), ...scripts];
}

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
const packageOf = (specifier: string): string => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

/**
 * Follows the entry points' relative imports (static, dynamic import(), require() and
 * require.resolve()) through
 * dist/; returns the files reached and each bare package imported, with one file that imports it.
 */
function reach(entries: string[]): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const queue = [...entries];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    // Packages found by module resolution to read their files (the dashboard serves uPlot's).
    const resolved = [...text.matchAll(/(?:\brequire|\)|import\.meta)\.resolve\(\s*(['"])([^'"]+)\1\s*\)/g)].map((m) => ({ fileName: m[2]! }));
    for (const { fileName } of [...ts.preProcessFile(text, true, true).importedFiles, ...resolved]) {
      if (fileName.startsWith('.')) {
        const target = resolve(dirname(file), fileName);
        if (!existsSync(target)) throw new Error(`${relative(packageRoot, file)} imports ${fileName}, which is not in the build`);
        queue.push(target);
      } else if (!isBuiltin(fileName) && !packages.has(packageOf(fileName))) {
        packages.set(packageOf(fileName), relative(packageRoot, file));
      }
    }
  }
  return { files, packages };
}

/** What would be missing from an --omit=dev install: the package and the file that imports it. */
function missingInProduction(imports: Map<string, string>, pkg: PackageJson, lock: Lockfile): string[] {
  const problems: string[] = [];
  for (const [name, file] of imports) {
    const entry = lock.packages[`node_modules/${name}`];
    if (pkg.dependencies?.[name] === undefined) problems.push(`${name} (imported by ${file}) is not in "dependencies"`);
    else if (entry === undefined || entry.dev === true || entry.devOptional === true) problems.push(`${name} (imported by ${file}) is not installed by npm ci --omit=dev (package-lock.json)`);
  }
  return problems;
}

describe('production dependencies', () => {
  const pkg = readJson<PackageJson>('package.json');
  const lock = readJson<Lockfile>('package-lock.json');
  const entries = entryPoints(pkg);
  const { files, packages: imports } = reach(entries);

  it('starts from the command and the programs pm2 runs, and reaches the whole product', () => {
    for (const program of ['cli/main.js', 'apps/api/main.js', 'apps/worker/main.js', 'proxy/main.js']) expect(entries).toContain(join(dist, program));
    // The CLI's dynamic imports are followed too (bench run and demo load bench/scenario.js).
    for (const file of ['bench/scenario.js', 'bench/loadgen.js', 'backup/index.js', 'rollout/index.js']) expect(files.has(join(dist, file)), file).toBe(true);
    // The packages the image has needed at boot are found (the scan does see imports).
    for (const name of ['undici', 'pm2', 'fastify', 'pg', '@resvg/resvg-js', 'uplot']) expect(imports.has(name), name).toBe(true);
  });

  it('every package dist/ imports is a production dependency, installed without dev dependencies', () => {
    expect(missingInProduction(imports, pkg, lock)).toEqual([]);
  });

  it('would have caught undici as a devDependency (the image died on it)', () => {
    const { undici, ...dependencies } = pkg.dependencies ?? {};
    const asBefore: PackageJson = { dependencies, devDependencies: { ...pkg.devDependencies, undici: undici! } };
    const lockBefore: Lockfile = { packages: { ...lock.packages, 'node_modules/undici': { ...lock.packages['node_modules/undici'], dev: true } } };
    expect(missingInProduction(imports, asBefore, lockBefore)).toEqual([expect.stringMatching(/^undici \(imported by dist\/.+\) is not in "dependencies"$/)]);
    expect(missingInProduction(imports, pkg, lockBefore)).toEqual([expect.stringContaining('undici')]);
  });

  it('dev-only packages stay out of the build', () => {
    const devOnly = Object.keys(pkg.devDependencies ?? {}).filter((name) => imports.has(name));
    expect(devOnly.map((name) => `${name} (imported by ${imports.get(name)})`)).toEqual([]);
  });
});
