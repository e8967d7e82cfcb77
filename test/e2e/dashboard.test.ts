// The dashboard in a real browser (Debian's Chromium through playwright-core): refused without the
// token, signed in with it, charts filling while load runs, the running rollout shown, the rollback
// button (with its confirmation) rolling back, a cookie-only change without the page's CSRF header
// refused, and a phone-width layout without sideways scrolling. A screenshot is kept in
// test-artifacts/.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { launchAppliance, type Appliance } from '../../bench/harness.js';
import { runCli } from '../helpers/cli.js';
import { startLoad, type Load } from '../../bench/load.js';
import { packageRoot } from '../../lib/package-root.js';
import { reapOrphans } from '../../supervisor/index.js';

vi.setConfig({ testTimeout: 120_000 });
let app: Appliance;
let browser: Browser;
let load: Load;

beforeAll(async () => {
  app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '200', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_CANARY_STEPS: '50,100', CHANGELENS_STEP_SECONDS: '120' } });
  await app.ready;
  browser = await chromium.launch({ executablePath: process.env.CHANGELENS_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  load = startLoad(`${app.url}/api/work?ms=2`, 40);
});

afterAll(async () => {
  await load?.stop();
  await browser?.close();
  if (app && app.child.exitCode === null) await app.stop('SIGTERM');
  if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
});

const api = async (method: string, path: string, body?: unknown): Promise<any> => {
  const res = await fetch(`${app.url}/_changelens${path}`, { method, headers: { authorization: `Bearer ${app.secrets().adminToken}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  return res.json();
};

it('signs in with the token, shows live charts and the rollout, and the rollback button rolls back', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  // Without the token: a sign-in page, and no data.
  const refused = await page.goto(`${app.url}/_changelens/`);
  expect(refused!.status()).toBe(401);
  await expect.poll(() => page.textContent('body')).toContain('Sign in with the admin token');
  expect((await page.evaluate(async () => (await fetch('/_changelens/api/status')).status))).toBe(401);
  // A wrong token is refused too.
  await page.fill('input[name=token]', 'not-the-token-at-all');
  await page.click('button[type=submit]');
  await expect.poll(() => page.textContent('body')).toContain('not valid');

  await page.fill('input[name=token]', app.secrets().adminToken);
  await page.click('button[type=submit]');
  await page.waitForURL(`${app.url}/_changelens/`);
  await expect.poll(() => page.textContent('#active'), { timeout: 10_000 }).toContain('active initial');
  // The charts fill from the judge's slices while the load runs.
  await expect.poll(() => page.evaluate('window.__changelens.points') as Promise<number>, { timeout: 15_000 }).toBeGreaterThan(3);
  expect(await page.locator('#chart-p99 canvas').count()).toBe(1);
  // Each colour's worker has its charts too (jobs: P99 and failed attempts).
  expect(await page.locator('#chart-jobs-p99 canvas').count()).toBe(1);
  expect(await page.locator('#chart-jobs-errors canvas').count()).toBe(1);

  // A cookie-only change without the page's header is refused (what a cross-site form would send).
  expect(await page.evaluate(async () => (await fetch('/_changelens/api/deployment/pause', { method: 'POST' })).status)).toBe(400);

  const d = await api('POST', '/api/deployments', { version: 'dash-1' });
  await expect.poll(() => page.textContent('#rollout-body'), { timeout: 30_000 }).toContain('dash-1');
  await expect.poll(() => page.textContent('#rollout-body'), { timeout: 30_000 }).toContain('shifting');
  page.once('dialog', (dialog) => { expect(dialog.message()).toContain('Roll back'); void dialog.accept(); });
  await page.click('[data-action=rollback]');
  await expect.poll(async () => (await api('GET', `/api/deployments/${d.id}`)).status.phase, { timeout: 15_000 }).toBe('rolled_back');
  await expect.poll(() => page.textContent('#deployments'), { timeout: 10_000 }).toContain('rolled_back');
  const audit = await api('GET', '/api/audit?since=10m');
  expect(audit.events.find((e: any) => e.eventType === 'rollback' && e.deploymentId === d.id)?.details?.reason ?? '').toContain('from the dashboard');

  // The deploy and the rollback are marked on the live charts; the deployment's page shows its plan and verdicts.
  await expect.poll(() => page.evaluate('window.__changelens.marks') as Promise<number>, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
  await page.click(`#deployments a[href="#deployment=${d.id}"]`);
  await expect.poll(() => page.textContent('#deployment-card'), { timeout: 10_000 }).toContain(`Deployment ${d.id}`);
  expect(await page.textContent('#deployment-body')).toMatch(/dash-1.*rolled_back/s);
  expect(await page.locator('#verdicts th').allTextContents()).toContain('explanation');

  // A gate: the button says Approve, and approving it promotes (a direct deployment awaiting approval).
  const gated = await api('POST', '/api/deployments', { version: 'dash-2', strategy: 'direct', awaitApproval: true });
  await expect.poll(() => page.textContent('#step-button'), { timeout: 30_000 }).toBe('Approve');
  expect(await page.textContent('#rollout-body')).toContain('waiting for approval before step 1/1');
  page.once('dialog', (dialog) => { expect(dialog.message()).toContain('Approve the held step'); void dialog.accept(); });
  await page.click('#step-button');
  await expect.poll(async () => (await api('GET', `/api/deployments/${gated.id}`)).status.phase, { timeout: 15_000 }).toBe('promoted');
  const approvals = (await api('GET', '/api/audit?since=10m')).events.filter((e: any) => e.eventType === 'approve' && e.deploymentId === gated.id);
  expect(approvals).toMatchObject([{ details: { reason: 'from the dashboard' } }]);

  // A notification's link to a deployment's page leads there through signing in.
  const linked = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  expect((await linked.goto(`${app.url}/_changelens/?deployment=${d.id}`))!.status()).toBe(401);
  await linked.fill('input[name=token]', app.secrets().adminToken);
  await linked.click('button[type=submit]');
  await expect.poll(() => linked.textContent('#deployment-card'), { timeout: 10_000 }).toContain(`Deployment ${d.id}`);
  expect(linked.url()).toBe(`${app.url}/_changelens/#deployment=${d.id}`);
  await linked.close();

  mkdirSync(join(packageRoot, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: join(packageRoot, 'test-artifacts', 'dashboard.png'), fullPage: true });

  // Phone width: everything wraps; nothing scrolls sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  expect(await page.evaluate('document.documentElement.scrollWidth') as number).toBeLessThanOrEqual(391);
  await page.screenshot({ path: join(packageRoot, 'test-artifacts', 'dashboard-phone.png'), fullPage: true });
  await page.close();
});

it('changelens demo: load, a bad release, the automatic rollback, and where to watch it', async () => {
  const res = await runCli(['demo', '--rate', '40'], app.env, 110_000);
  expect(res.code, res.stderr + res.stdout).toBe(0);
  expect(res.stdout).toContain(`Watch it on the dashboard: ${app.url}/_changelens/`);
  expect(res.stdout).toMatch(/Rolled back \d+ ms after the bad release took its first request/);
  expect(res.stdout).toMatch(/Charts and numbers: .*changelens-demo-/);
  const out = /Charts and numbers: (\S+)\//.exec(res.stdout)![1]!;
  rmSync(out, { recursive: true, force: true });
});
