// The house has no circles: no source file imports (through others) itself, and the top-level
// folders — the architecture's boxes — import each other in one direction only. Type-only imports
// count: a circle of types is a circle a reader has to walk too. Tests are left out.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/package-root.js';

const FOLDERS = ['lib', 'supervisor', 'apps', 'proxy', 'monitoring', 'rollout', 'fleet', 'backup', 'cli', 'bench'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? sources(join(dir, e.name))
    : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []);
}

/** file → the project files it imports (relative specifiers, `.js` written for the `.ts` source). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of FOLDERS.flatMap((f) => sources(join(packageRoot, f)))) {
    const deps = ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles
      .filter(({ fileName }) => fileName.startsWith('.'))
      .map(({ fileName }) => relative(packageRoot, resolve(dirname(file), fileName.replace(/\.js$/, '.ts'))));
    graph.set(relative(packageRoot, file), deps);
  }
  return graph;
}

/** Every circle found by a depth-first walk, each as the path that closes it. */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

describe('the import graph', () => {
  const graph = importGraph();

  it('reads every source file and finds the imports (the walk sees edges)', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get('proxy/main.ts')).toContain('proxy/admin/index.ts');
  });

  it('has no circle between files', () => {
    expect(circles(graph).map((c) => c.join(' → '))).toEqual([]);
  });

  it('has no circle between the top-level folders', () => {
    const folders = new Map<string, string[]>();
    for (const [file, deps] of graph) {
      const from = file.split('/')[0]!;
      for (const to of deps.map((d) => d.split('/')[0]!)) if (to !== from && !folders.get(from)?.includes(to)) folders.set(from, [...(folders.get(from) ?? []), to]);
    }
    expect(circles(folders).map((c) => c.join(' → '))).toEqual([]);
    // The supervisor writes the audit log and fires alerts through lib/, not through rollout/.
    expect(folders.get('supervisor')).not.toContain('rollout');
  });

  it('finds a circle where there is one', () => {
    expect(circles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c', 'a']]);
  });
});
