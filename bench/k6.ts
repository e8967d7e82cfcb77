// `changelens bench k6`: the same load as a k6 script (constant-arrival-rate executor, the same
// weighted mix), for those who outgrow one load machine and run k6 or k6-operator.
import type { Endpoint, LoadPlan } from './loadgen.js';

/** The demo services' everyday traffic: mostly reads, some CPU work, some writes through the queue. */
export const DEFAULT_MIX: readonly Endpoint[] = [
  { method: 'GET', path: '/api/data?limit=10', weight: 8 },
  { method: 'GET', path: '/api/work?ms=5', weight: 1 },
  { method: 'POST', path: '/api/process', body: { workMs: 5 }, weight: 1 },
];

/** "GET:/api/data:3,POST:/api/process:1" → endpoints (a POST gets {} as its body), or what is wrong. */
export function parseMix(text: string): Endpoint[] | { error: string } {
  const out: Endpoint[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(GET|POST):(\/[^:\s]*):(\d+(?:\.\d+)?)$/.exec(part);
    if (!m || Number(m[3]) <= 0) return { error: `--mix: expected METHOD:/path:weight items like GET:/api/data:3,POST:/api/process:1, got ${JSON.stringify(part)}` };
    out.push({ method: m[1] as 'GET' | 'POST', path: m[2]!, weight: Number(m[3]), ...(m[1] === 'POST' ? { body: {} } : {}) });
  }
  return out.length ? out : { error: '--mix: expected at least one METHOD:/path:weight item' };
}

export function k6Script(plan: Pick<LoadPlan, 'target' | 'rate' | 'durationSeconds' | 'rampSeconds' | 'mix'>): string {
  const total = plan.mix.reduce((n, e) => n + e.weight, 0);
  let acc = 0;
  // Cumulative thresholds: one random number picks the endpoint, as the generator does.
  const table = plan.mix.map((e) => ({ upTo: (acc += e.weight) / total, method: e.method, path: e.path, body: e.body === undefined ? null : JSON.stringify(e.body) }));
  const ramp = plan.rampSeconds ?? 0;
  const vus = Math.max(10, Math.ceil(plan.rate / 10));
  const scenario = ramp > 0
    ? `{ executor: 'ramping-arrival-rate', startRate: 0, timeUnit: '1s', preAllocatedVUs: ${vus}, maxVUs: ${vus * 10},
      stages: [{ target: ${plan.rate}, duration: '${ramp}s' }, { target: ${plan.rate}, duration: '${plan.durationSeconds - ramp}s' }] }`
    : `{ executor: 'constant-arrival-rate', rate: ${plan.rate}, timeUnit: '1s', duration: '${plan.durationSeconds}s', preAllocatedVUs: ${vus}, maxVUs: ${vus * 10} }`;
  return `// Written by \`changelens bench k6\`: ${plan.rate} req/s for ${plan.durationSeconds} s${ramp ? ` (ramp ${ramp} s)` : ''} against ${plan.target}.
// An open model: k6 starts iterations at the rate whatever the answers do (arrival-rate executors).
// Run: k6 run this.js   (TARGET=https://… k6 run this.js for another target)
import http from 'k6/http';
import { check } from 'k6';

const TARGET = __ENV.TARGET || ${JSON.stringify(plan.target)};
const MIX = ${JSON.stringify(table, null, 2).replace(/\n/g, '\n')};

export const options = {
  scenarios: { changelens: ${scenario} },
  thresholds: { http_req_failed: ['rate<0.05'], http_req_duration: ['p(99)<1500'] },
};

export default function () {
  const x = Math.random();
  const e = MIX.find((m) => x < m.upTo) || MIX[MIX.length - 1];
  const params = { headers: { 'content-type': 'application/json' }, tags: { endpoint: e.method + ' ' + e.path } };
  const res = e.method === 'POST' ? http.post(TARGET + e.path, e.body, params) : http.get(TARGET + e.path, params);
  check(res, { 'not a 5xx': (r) => r.status < 500 });
}
`;
}
