// What a restore leaves alone: the appliance's own tables (release history, deployments, audit log,
// applied migrations). The list of them must follow the migrations, and every index or constraint
// of theirs must be named after its table, or the restore's table-of-contents filter would miss it.
// (The restore itself is tested end to end in test/e2e/backup.test.ts.)
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrationsDir } from '../../lib/package-root.js';
import { appDataOnly, APPLIANCE_TABLES } from './postgres.js';

const sql = readdirSync(migrationsDir).filter((f) => f.endsWith('.sql')).sort().map((f) => ({ file: f, text: readFileSync(join(migrationsDir, f), 'utf8') }));
// The appliance's own: the rollout's history and the fleet's runtime state (a restore never moves a lease).
const ownFiles = sql.filter((m) => m.file.includes('releases') || m.file.includes('fleet'));

describe('APPLIANCE_TABLES', () => {
  it('is schema_migrations and exactly the tables of the appliance\'s own migrations', () => {
    const created = ownFiles.flatMap((m) => [...m.text.matchAll(/CREATE TABLE (\w+)/g)].map((x) => x[1]!));
    expect([...APPLIANCE_TABLES].sort()).toEqual(['schema_migrations', ...created].sort());
  });

  it('every index on those tables is named after its table', () => {
    for (const m of sql) {
      for (const [, index, table] of m.text.matchAll(/CREATE (?:UNIQUE )?INDEX (\w+) ON (\w+)/g)) {
        if ((APPLIANCE_TABLES as readonly string[]).includes(table!)) expect(index!.startsWith(`${table}_`), `${m.file}: ${index}`).toBe(true);
      }
    }
  });
});

describe('appDataOnly', () => {
  it('comments out the appliance\'s tables, their data, indexes and constraints; keeps the app\'s', () => {
    const list = [
      ';', '; Archive created at 2026-11-29 05:00:00 UTC',
      '215; 1259 16385 TABLE public items changelens',
      '216; 1259 16390 SEQUENCE public items_id_seq changelens',
      '217; 1259 16400 TABLE public audit_events changelens',
      '230; 0 16385 TABLE DATA public items changelens',
      '231; 0 16400 TABLE DATA public audit_events changelens',
      '240; 2606 16410 CONSTRAINT public releases releases_pkey changelens',
      '241; 2606 16420 FK CONSTRAINT public verdicts verdicts_deployment_id_fkey changelens',
      '242; 1259 16430 INDEX public deployments_one_running changelens',
      '243; 1259 16440 INDEX public items_category_idx changelens',
      '244; 0 0 SEQUENCE SET public items_id_seq changelens',
      '245; 1259 16450 TABLE public deployment_buckets changelens',
      '246; 1259 16460 TABLE public schema_migrations changelens',
      // The app's, in its own schema, whatever their names.
      '247; 1259 16470 TABLE app releases_notes changelens_app',
      '248; 0 16470 TABLE DATA app releases_notes changelens_app',
      '249; 2615 16480 SCHEMA - app changelens_app',
    ].join('\n');
    const kept = appDataOnly(list).split('\n').filter((l) => /^\d/.test(l));
    expect(kept).toEqual([
      '215; 1259 16385 TABLE public items changelens',
      '216; 1259 16390 SEQUENCE public items_id_seq changelens',
      '230; 0 16385 TABLE DATA public items changelens',
      '243; 1259 16440 INDEX public items_category_idx changelens',
      '244; 0 0 SEQUENCE SET public items_id_seq changelens',
      '247; 1259 16470 TABLE app releases_notes changelens_app',
      '248; 0 16470 TABLE DATA app releases_notes changelens_app',
    ]);
  });
});
