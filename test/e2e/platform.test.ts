// Platform awareness, end to end: on a cloud container platform the appliance refuses to keep
// embedded Postgres on a filesystem that vanishes with the instance, unless in demo mode.
// (The refusal itself is in boot-errors.test.ts; the mount decision in supervisor/platform.test.ts.)
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { launchAppliance } from '../../bench/harness.js';
import { reapOrphans } from '../../supervisor/index.js';

describe('demo mode on a cloud platform', () => {
  it('CHANGELENS_EPHEMERAL=1 lets embedded Postgres boot on CloudBase without a durable volume, with a warning', async () => {
    const app = await launchAppliance({ env: { CHANGELENS_PLATFORM: 'cloudbase', CHANGELENS_EPHEMERAL: '1', CHANGELENS_SEED_ITEMS: '0' } });
    try {
      await app.ready;
      expect(app.records.some((r) => r.level === 'warn' && String(r.msg).includes('demo mode'))).toBe(true);
      expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
    } finally {
      expect((await app.stop('SIGTERM')).code).toBe(0);
      await reapOrphans(join(app.dataDir, 'state', 'pm2'));
    }
  });
});
