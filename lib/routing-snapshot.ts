// The routing table as last decided, snapshotted to the data dir so that a restarted proxy routes
// safely before Postgres answers. Written atomically (temp file + rename): never half a file.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Color } from './config.js';

export interface RoutingSnapshot {
  schemaVersion: 1;
  activeColor: Color;
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

export function writeRoutingSnapshot(path: string, activeColor: Color): RoutingSnapshot {
  const snapshot: RoutingSnapshot = { schemaVersion: 1, activeColor, updatedAt: new Date().toISOString() };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(snapshot, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, path);
  return snapshot;
}
