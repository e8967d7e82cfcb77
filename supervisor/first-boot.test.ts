import { existsSync, realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { resolveBinaries } from './first-boot.js';

describe('resolveBinaries', () => {
  // Debian's /usr/bin/pg_dump is a perl wrapper, and the image has no perl: backups must run the
  // binary itself, with external Postgres too (nothing embedded to take the directory from).
  it('finds pg_dump in /usr/lib/postgresql/<major>/bin when Postgres is external', () => {
    const config = loadConfig({ env: { DATABASE_URL: 'postgres://u:p@db.example:5432/app', REDIS_URL: 'redis://cache.example:6379' } });
    const bin = resolveBinaries(config, { postgres: false, redis: false });
    expect(bin.postgres).toBe('');
    expect(bin.pgToolsDir).toMatch(/^\/usr\/lib\/postgresql\/\d+\/bin$/);
    expect(existsSync(`${bin.pgToolsDir}/pg_dump`)).toBe(true);
    expect(realpathSync(`${bin.pgToolsDir}/pg_dump`)).not.toContain('pg_wrapper');
  });

  it('takes the embedded server\'s directory, or the one configured', () => {
    const embedded = resolveBinaries(loadConfig({ env: {} }), { postgres: true, redis: false });
    expect(embedded.pgToolsDir).toBe(embedded.postgres.replace(/\/postgres$/, ''));
    const configured = resolveBinaries(loadConfig({ env: { CHANGELENS_PG_BIN_DIR: '/opt/pg/bin', DATABASE_URL: 'postgres://u:p@db.example/app' } }), { postgres: false, redis: false });
    expect(configured.pgToolsDir).toBe('/opt/pg/bin');
  });
});
