// `npm run docs:images`: the pictures in README.md and docs/getting-started.md, made the way the
// tests and the benchmark make theirs — a throwaway appliance under open-model load, a release with
// an error regression going out as a canary and rolled back by the judge, the dashboard photographed
// in headless Chromium (Debian's) at the rollback and on the deployment's page, and the benchmark's
// own P99 and error charts of the run. Writes docs/images/; commit what changed.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { packageRoot } from '../lib/package-root.js';
import { reapOrphans } from '../supervisor/index.js';
import { launchAppliance } from './harness.js';
import { runScenario } from './scenario.js';

const images = join(packageRoot, 'docs', 'images');
mkdirSync(images, { recursive: true });
const scratch = mkdtempSync(join(tmpdir(), 'changelens-docs-images-'));
const app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '2000', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_BACKUP_PG_SCHEDULE: 'off', CHANGELENS_BACKUP_REDIS_SCHEDULE: 'off' } });
const browser = await chromium.launch({ executablePath: process.env.CHANGELENS_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  await app.ready;
  const token = app.secrets().adminToken;
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 }, deviceScaleFactor: 1 });
  await page.goto(`${app.url}/_changelens/`);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.waitForURL(`${app.url}/_changelens/`);
  const api = async (path: string): Promise<any> => (await fetch(`${app.url}/_changelens${path}`, { headers: { authorization: `Bearer ${token}` } })).json();

  // The dashboard is photographed a few seconds after the judge rolled the canary back: the
  // candidate's errors, the rollback mark, the traffic back on the stable colour.
  let rolledBack: string | null = null;
  const photographed = (async () => {
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const { events } = await api('/api/audit?since=10m');
      const rollback = events.find((e: { eventType: string }) => e.eventType === 'rollback');
      if (!rollback) continue;
      rolledBack = rollback.deploymentId as string;
      await new Promise((r) => setTimeout(r, 8_000));
      await page.reload();
      // Polled from outside: the dashboard's policy lets no string of script be evaluated inside it.
      for (let i = 0; !(await page.evaluate('window.__changelens.points > 20 && window.__changelens.marks >= 2')); i++) {
        if (i > 60) throw new Error('the dashboard did not fill its charts within 30 s');
        await new Promise((r) => setTimeout(r, 500));
      }
      await page.screenshot({ path: join(images, 'dashboard.png'), clip: { x: 0, y: 0, width: 1200, height: 1000 } });
      await page.goto(`${app.url}/_changelens/#deployment=${rolledBack}`);
      await page.waitForSelector('#verdicts tr:nth-child(2)', { timeout: 15_000 });
      await page.locator('#deployment-card').screenshot({ path: join(images, 'deployment.png') });
      return null;
    }
  })().catch((err: Error) => err);
  const out = join(scratch, 'run');
  const summary = await runScenario({ url: app.url, token, scenario: 'errors', strategy: 'canary', rate: 60, durationSeconds: 60, baselineSeconds: 20, recoverySeconds: 15, out, onProgress: (l) => process.stderr.write(`${l}\n`) });
  const failed = await photographed;
  if (failed) throw failed;
  copyFileSync(join(out, 'p99.png'), join(images, 'bench-p99.png'));
  copyFileSync(join(out, 'errors.png'), join(images, 'bench-errors.png'));
  process.stdout.write(`${summary.outcome}: detected ${summary.timeToDetectMs} ms after the first candidate request, ${summary.badRequests} bad requests (deployment ${rolledBack})\nwrote docs/images/dashboard.png, deployment.png, bench-p99.png, bench-errors.png\n`);
} finally {
  await browser.close();
  await app.stop('SIGTERM');
  await reapOrphans(join(app.dataDir, 'state', 'pm2'));
  rmSync(scratch, { recursive: true, force: true });
}
