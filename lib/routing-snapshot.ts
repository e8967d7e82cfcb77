// The routing table as last decided, snapshotted to the data dir so that a restarted proxy routes
// safely before Postgres answers. Written atomically (lib/atomic-file.ts): never half a file.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic-file.js';
import type { Color } from './config.js';

export interface RoutingSnapshot {
  schemaVersion: 1;
  activeColor: Color;
  /** The active release, so a (re)booting supervisor starts the active colour with it. */
  release?: { version: string; artifact: string; env: Record<string, string> };
  updatedAt: string;
}

export function readRoutingSnapshot(path: string): RoutingSnapshot | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = JSON.parse(text) as Partial<RoutingSnapshot>;
  if (parsed.schemaVersion !== 1 || (parsed.activeColor !== 'blue' && parsed.activeColor !== 'green')) {
    throw new Error(`${path}: not a routing snapshot of schemaVersion 1`);
  }
  return parsed as RoutingSnapshot;
}

export function writeRoutingSnapshot(path: string, activeColor: Color, release?: RoutingSnapshot['release']): RoutingSnapshot {
  const snapshot: RoutingSnapshot = { schemaVersion: 1, activeColor, ...(release ? { release } : {}), updatedAt: new Date().toISOString() };
  writeFileAtomic(path, JSON.stringify(snapshot, null, 2) + '\n', 0o644);
  return snapshot;
}
