// The benchmark end to end on one appliance: `changelens bench matrix` runs a regressed release
// under canary (rolled back) and direct (promoted, then reset), and writes every run's series,
// summary and charts plus the comparison report.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { launchAppliance, type Appliance } from '../../bench/harness.js';
import { runCli } from '../helpers/cli.js';
import { svgToPng } from '../../bench/chart.js';
import { reapOrphans } from '../../supervisor/index.js';

vi.setConfig({ testTimeout: 180_000 });
let app: Appliance;

beforeAll(async () => {
  app = await launchAppliance({ env: { CHANGELENS_SEED_ITEMS: '200', CHANGELENS_MONITOR_RULES: '[]', CHANGELENS_INSPECT_SECONDS: '0', CHANGELENS_KEEP_WARM_SECONDS: '0' } });
  await app.ready;
});

afterAll(async () => {
  if (app && app.child.exitCode === null) await app.stop('SIGTERM');
  if (app) await reapOrphans(join(app.dataDir, 'state', 'pm2'));
});

it('a short matrix: canary rolls the errors back, direct ships them; series, summaries, charts and the report are written', async () => {
  const out = mkdtempSync(join(tmpdir(), 'bench-matrix-'));
  const res = await runCli(['bench', 'matrix', '--scenarios', 'errors', '--strategies', 'canary,direct', '--rate', '50', '--out', out, '--json'], app.env, 170_000);
  expect(res.code, res.stderr).toBe(0);
  const { runs, comparison } = JSON.parse(res.stdout);
  expect(runs.map((r: any) => [r.strategy, r.outcome])).toEqual([['canary', 'rolled_back'], ['direct', 'promoted']]);
  const [canary, direct] = runs;
  expect(canary.timeToDetectMs).toBeGreaterThan(0);
  expect(canary.timeToRollbackMs).toBeGreaterThanOrEqual(canary.timeToDetectMs);
  // Containment: the canary let through a fraction of what direct sent to the bad release.
  expect(canary.badRequests).toBeGreaterThan(0);
  expect(canary.badRequests).toBeLessThan(direct.badRequests);
  expect(direct.failedRequests).toBeGreaterThan(canary.failedRequests);
  expect(comparison).toHaveLength(2);
  for (const dir of ['errors-canary-1', 'errors-direct-1']) {
    for (const file of ['timeseries.csv', 'summary.json', 'p99.svg', 'p99.png', 'errors.svg', 'errors.png']) expect(existsSync(join(out, dir, file)), `${dir}/${file}`).toBe(true);
    const csv = readFileSync(join(out, dir, 'timeseries.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('second,color,count,p50_ms,p95_ms,p99_ms,error_rate,candidate_weight,phase');
    expect(csv.length).toBeGreaterThan(8);
    expect(csv.some((l) => l.endsWith(',baseline')) && csv.some((l) => l.endsWith(',recovery'))).toBe(true);
    const svg = readFileSync(join(out, dir, 'p99.svg'), 'utf8');
    expect(() => svgToPng(svg)).not.toThrow();
    expect(svg).toContain('data-marker="deploy"');
  }
  expect(readFileSync(join(out, 'errors-canary-1', 'p99.svg'), 'utf8')).toContain('data-marker="rollback"');
  expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('<img src="errors-direct-1/p99.svg"');
  // The bad release that direct promoted was replaced by a clean one: the appliance serves without errors again.
  const after = await fetch(`${app.url}/api/data?limit=1`);
  expect(after.status).toBe(200);
  await after.arrayBuffer();
});
