// The dashboard at /_changelens/: one page, no build step. Live per-colour P99, error rate and
// traffic (uPlot, fed every second from /api/live) with deploy, promote and rollback marks, the
// running rollout with its verdicts, next-step (a gate's approval) / promote / rollback / pause
// buttons (with confirmation), recent deployments (each opens its page: plan and every verdict
// with its explanation, #deployment=<id>), the audit log, backups and alerts. It signs in through /_changelens/login (the admin token, once, into an HttpOnly cookie);
// its POSTs carry x-changelens-csrf, which a cross-site form cannot send.

import { GATE } from '../rollout/index.js';

export function loginPage(message: string, deployment?: string): string {
  return page('ChangeLens — sign in', `
<main class="login"><h1>ChangeLens</h1><p>${escapeHtml(message)}</p>
<form method="post" action="/_changelens/login"><label>Admin token <input name="token" type="password" autocomplete="current-password" required></label>${deployment ? `<input type="hidden" name="deployment" value="${escapeHtml(deployment)}">` : ''}
<button type="submit">Open the dashboard</button></form>
<p class="hint">The token is CHANGELENS_ADMIN_TOKEN, or adminToken in &lt;data&gt;/state/secrets.json.</p></main>`, '');
}

export function dashboardPage(): string {
  return page('ChangeLens', `
<header><h1>ChangeLens</h1><span id="active">…</span><span id="updated" class="hint"></span><button id="signout">Sign out</button></header>
<section id="rollout" class="card"><h2>Rollout</h2><div id="rollout-body">…</div>
  <div class="actions"><button data-action="step" id="step-button">Next step</button><button data-action="promote">Promote</button><button data-action="rollback" class="danger">Roll back</button><button data-action="pause">Pause</button><button data-action="resume">Resume</button></div></section>
<section id="deployment-card" class="card" hidden><h2 id="deployment-title">Deployment</h2><div id="deployment-body"></div><p><a href="#">close</a></p></section>
<section class="card"><h2>P99 latency (ms)</h2><div id="chart-p99" class="chart"></div></section>
<section class="card"><h2>Error rate</h2><div id="chart-errors" class="chart"></div></section>
<section class="card"><h2>Traffic (req/s)</h2><div id="chart-traffic" class="chart"></div></section>
<section class="card"><h2>Jobs: P99, enqueue to end</h2><div id="chart-jobs-p99" class="chart"></div></section>
<section class="card"><h2>Jobs: failed attempts</h2><div id="chart-jobs-errors" class="chart"></div></section>
<div class="grid">
<section class="card" id="fleet-card" hidden><h2>Fleet</h2><table id="fleet"></table></section>
<section class="card"><h2>Deployments</h2><table id="deployments"></table></section>
<section class="card"><h2>Backups</h2><div id="backups">…</div><h2>Alerts</h2><div id="alerts">…</div></section>
</div>
<section class="card"><h2>Audit log (last hour)</h2><table id="audit"></table></section>`, SCRIPT);
}

/** The page's script, served as /_changelens/assets/dashboard.js: the page's policy allows no inline script. */
export function dashboardScript(): string {
  return SCRIPT;
}

function page(title: string, body: string, script: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>${script ? '<link rel="stylesheet" href="/_changelens/assets/uPlot.min.css">' : ''}<style>${CSS}</style></head>
<body>${body}${script ? '<script src="/_changelens/assets/uPlot.iife.min.js"></script><script src="/_changelens/assets/dashboard.js"></script>' : ''}</body></html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const CSS = `
*{box-sizing:border-box}body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;background:#f6f7f9;color:#1c1e21;max-width:1100px;margin:auto}
header{display:flex;flex-wrap:wrap;gap:.8rem;align-items:baseline}h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1rem;margin:.2rem 0 .5rem}
.card{background:#fff;border:1px solid #dde;border-radius:8px;padding:10px 12px;margin:10px 0;overflow-x:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:0 10px}
.chart{width:100%;min-height:200px}.hint{color:#667;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}
.actions{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}button{font:inherit;padding:6px 12px;border-radius:6px;border:1px solid #99a;background:#fff;cursor:pointer}
button.danger{border-color:#c33;color:#c33}button:disabled{opacity:.4;cursor:default}.ok{color:#1a7f37}.bad{color:#c33}
.mark{font-size:.75rem}tr.link{cursor:pointer}tr.link:hover{background:#f0f3f8}
.login{max-width:420px;margin:10vh auto;background:#fff;padding:20px;border-radius:8px;border:1px solid #dde}.login input{width:100%;padding:6px;margin:6px 0 12px}
@media (max-width:600px){body{padding:6px}td,th{padding:2px 3px}}`;

// The page's script: plain browser JavaScript, served as its own file (no inline script may run).
const SCRIPT = `
const api = async (path, method = 'GET', body) => {
  const res = await fetch('/_changelens' + path, { method, credentials: 'same-origin', headers: method === 'GET' ? {} : { 'content-type': 'application/json', 'x-changelens-csrf': '1' }, body: body ? JSON.stringify(body) : undefined });
  if (res.status === 401) { location.href = '/_changelens/'; throw new Error('signed out'); }
  const json = await res.json();
  if (!res.ok) throw new Error(json.message || res.status);
  return json;
};
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const COLORS = { blue: '#1f6fd1', green: '#1a9c4b' };
const charts = {};
function chart(id, key, fmt, yRange) {
  const el = $(id);
  const y = yRange ? { range: yRange } : { range: (u, min, max) => [0, Math.max(1, max)] };
  const opts = { width: el.clientWidth || 600, height: 200, scales: { x: { time: true }, y }, series: [{}, { label: 'blue', stroke: COLORS.blue, width: 2, spanGaps: false }, { label: 'green', stroke: COLORS.green, width: 2, spanGaps: false }], axes: [{}, { size: 64, values: (u, v) => v.map(fmt) }], hooks: { draw: [drawMarks] } };
  charts[key] = new uPlot(opts, [[], [], []], el);
}
// Deploys, promotions, rollbacks and gates from the audit log, drawn as labelled lines on every chart.
const MARK_COLORS = { deploy: '#555', promote: '#1a7f37', rollback: '#c33', abort: '#b26b00', gate: '#7048e8', approve: '#7048e8' };
let marks = [];
window.__changelens = { points: 0, marks: 0 };
function drawMarks(u) {
  const ctx = u.ctx;
  const [min, max] = [u.scales.x.min, u.scales.x.max];
  let drawn = 0;
  for (const m of [...marks].sort((a, b) => a.t - b.t)) {
    if (min == null || m.t < min || m.t > max) continue;
    const x = Math.round(u.valToPos(m.t, 'x', true));
    ctx.save();
    ctx.strokeStyle = MARK_COLORS[m.type] || '#555';
    ctx.fillStyle = ctx.strokeStyle;
    ctx.setLineDash([4, 3]);
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
    ctx.font = (11 * devicePixelRatio) + 'px system-ui';
    // Labels of marks close together go on rows of their own.
    ctx.fillText(m.type + (m.version ? ' ' + m.version : ''), x + 3 * devicePixelRatio, u.bbox.top + (12 + 13 * (drawn % 3)) * devicePixelRatio);
    ctx.restore();
    drawn++;
  }
  window.__changelens.marks = Math.max(window.__changelens.marks, drawn);
}
chart('chart-p99', 'p99', (v) => v + ' ms');
chart('chart-errors', 'errors', (v) => Math.round(v * 100) + ' %', [0, 1]);
chart('chart-traffic', 'traffic', (v) => v);
chart('chart-jobs-p99', 'jobsP99', (v) => v + ' ms');
chart('chart-jobs-errors', 'jobsErrors', (v) => Math.round(v * 100) + ' %', [0, 1]);
window.addEventListener('resize', () => { for (const [k, c] of Object.entries(charts)) c.setSize({ width: c.root.parentElement.clientWidth, height: 200 }); });

async function live() {
  const l = await api('/api/live?seconds=120');
  const t = l.seconds.map((s) => s.t / 1000);
  const col = (color, k) => l.seconds.map((s) => (s[color] && s[color].count ? s[color][k] : null));
  charts.p99.setData([t, col('blue', 'p99Ms'), col('green', 'p99Ms')]);
  charts.errors.setData([t, col('blue', 'errorRate'), col('green', 'errorRate')]);
  charts.traffic.setData([t, l.seconds.map((s) => s.blue ? s.blue.count : 0), l.seconds.map((s) => s.green ? s.green.count : 0)]);
  // Each colour's worker: what its jobs took and how many attempts failed (null: no job ended that second).
  const job = (color, k) => l.seconds.map((s) => (s.jobs && s.jobs[color].count ? s.jobs[color][k] : null));
  charts.jobsP99.setData([t, job('blue', 'p99Ms'), job('green', 'p99Ms')]);
  charts.jobsErrors.setData([t, job('blue', 'errorRate'), job('green', 'errorRate')]);
  window.__changelens.points = l.seconds.filter((s) => (s.blue && s.blue.count) || (s.green && s.green.count)).length;
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

let current = null;
const atGate = (d) => !!d && d.status.phase === 'paused' && (d.status.reason || '').startsWith(${JSON.stringify(GATE)});
async function status() {
  const s = await api('/api/status');
  $('active').innerHTML = 'active <b>' + esc(s.active.version) + '</b> on <b style="color:' + COLORS[s.active.color] + '">' + esc(s.active.color) + '</b>';
  const d = s.deployment;
  current = d;
  document.querySelectorAll('[data-action]').forEach((b) => { b.disabled = !d; });
  // At a gate the next step is its approval.
  const gate = atGate(d);
  $('step-button').textContent = gate ? 'Approve' : 'Next step';
  $('step-button').classList.toggle('ok', !!gate);
  $('rollout-body').innerHTML = d
    ? '<b>' + esc(d.version) + '</b> (' + esc(d.strategy) + ') on ' + esc(d.candidateColor) + ': <b>' + esc(d.status.phase) + '</b>, step ' + esc((d.status.stepIndex + 1) + '/' + d.status.steps.length + ' [' + d.status.steps.join(' → ') + ' %], weight ' + Math.round(d.weight * 100)) + ' %'
      + (d.status.reason ? '<br>' + esc(d.status.reason) : '')
      + '<br>last verdict: <b class="' + (d.lastVerdict === 'fail' ? 'bad' : 'ok') + '">' + esc(d.lastVerdict || '–') + '</b> ' + esc(d.lastExplanation || '')
      + ' <a href="#deployment=' + encodeURIComponent(d.id) + '">every verdict</a>'
    : 'no deployment running';
  // A fleet (external mode): every instance, who drives, what each routes; the charts above are the whole fleet's.
  const f = s.fleet;
  $('fleet-card').hidden = !f;
  if (f) {
    $('fleet').innerHTML = '<tr><th>instance</th><th>role</th><th>routing</th><th>seen</th></tr>' + f.instances.map((i) => {
      const r = i.state.routing;
      const routing = !r ? '–' : r.candidate && r.candidateWeight > 0 ? esc(r.stable) + ' ' + Math.round((1 - r.candidateWeight) * 100) + ' % / ' + esc(r.candidate) + ' ' + Math.round(r.candidateWeight * 100) + ' %' : esc(r.stable) + ' 100 %';
      const role = i.gone ? '<span class="bad">gone</span>' : (i.state.controller ? '<b>controller</b>' : 'follower') + (i.state.degraded ? ' <span class="bad">stable only: ' + esc(i.state.degraded) + '</span>' : '');
      return '<tr><td>' + esc(i.id) + (i.id === f.instance ? ' (this one)' : '') + '</td><td>' + role + '</td><td>' + routing + '</td><td>' + (i.lastSeenMsAgo / 1000).toFixed(1) + ' s ago</td></tr>';
    }).join('');
  }
}

async function lists() {
  const [deps, audit, backups, health] = await Promise.all([api('/api/deployments?limit=8'), api('/api/audit?since=1h&limit=30'), api('/api/backups').catch(() => null), api('/api/health').catch(() => null)]);
  marks = audit.events.filter((e) => MARK_COLORS[e.eventType]).map((e) => ({ t: Date.parse(e.at) / 1000, type: e.eventType, version: e.version }));
  $('deployments').innerHTML = '<tr><th>version</th><th>strategy</th><th>phase</th><th>started</th></tr>' + deps.deployments.map((d) => '<tr class="link" data-deployment="' + esc(d.id) + '"><td><a href="#deployment=' + encodeURIComponent(d.id) + '">' + esc(d.version) + '</a></td><td>' + esc(d.strategy) + '</td><td class="' + (d.status.phase === 'rolled_back' ? 'bad' : '') + '">' + esc(d.status.phase) + '</td><td>' + esc(new Date(d.startedAt).toLocaleTimeString()) + '</td></tr>').join('');
  $('audit').innerHTML = '<tr><th>at</th><th>event</th><th>actor</th><th></th></tr>' + audit.events.map((e) => '<tr><td>' + esc(new Date(e.at).toLocaleTimeString()) + '</td><td>' + esc(e.eventType) + '</td><td>' + esc(e.actor) + '</td><td class="' + (e.success ? '' : 'bad') + '">' + esc(e.error || e.version || '') + '</td></tr>').join('');
  const b = backups && backups.summary;
  $('backups').innerHTML = b ? b.kinds.map((k) => { const l = b.last[k]; return esc(k) + ': ' + (l ? Math.round(l.ageSeconds / 60) + ' min ago, ' + (l.verified ? 'verified' : 'not verified') : 'none yet'); }).join('<br>') + (b.overdue.length ? '<br><b class="bad">overdue: ' + esc(b.overdue.join(', ')) + '</b>' : '') : 'unavailable';
  const alerts = (health && health.alerts) || [];
  $('alerts').innerHTML = alerts.length ? alerts.map((a) => '<span class="bad">' + esc(a.rule) + '</span> (' + esc(a.metric) + ')').join('<br>') : '<span class="ok">none</span>';
}

// A deployment's page (#deployment=<id>): its plan, status and every judged window with its explanation.
async function deploymentPage() {
  // A link from a notification says ?deployment=<id>: the same page as #deployment=<id>.
  const linked = new URLSearchParams(location.search).get('deployment');
  if (linked && !location.hash) { history.replaceState(null, '', '/_changelens/#deployment=' + encodeURIComponent(linked)); }
  const m = /^#deployment=(.+)$/.exec(location.hash);
  $('deployment-card').hidden = !m;
  if (!m) return;
  const d = await api('/api/deployments/' + encodeURIComponent(decodeURIComponent(m[1])));
  $('deployment-title').textContent = 'Deployment ' + d.id;
  const p = d.plan;
  // Everything stored is shown escaped, numbers too: the page trusts nothing it reads back.
  const rows = d.verdicts.map((v) => '<tr><td>' + esc(v.seq) + '</td><td>' + esc(new Date(v.window ? v.window.endMs : v.at).toLocaleTimeString()) + '</td><td>' + esc(v.stepIndex + 1) + '</td><td>' + esc(Math.round(v.weight * 100)) + ' %</td><td class="' + (v.verdict === 'fail' ? 'bad' : v.verdict === 'pass' ? 'ok' : '') + '">' + esc(v.verdict) + '</td><td>' + esc(v.samples.candidate) + ' / ' + esc(v.samples.stable) + '</td><td>' + esc(v.explanation) + '</td></tr>').join('');
  $('deployment-body').innerHTML = '<b>' + esc(d.version) + '</b> (' + esc(d.strategy) + ') on ' + esc(d.candidateColor) + ', stable ' + esc(d.stableVersion) + ' on ' + esc(d.stableColor) + ': <b>' + esc(d.status.phase) + '</b>' + (d.status.reason ? ' — ' + esc(d.status.reason) : '')
    + '<br><span class="hint">' + esc('steps ' + d.status.steps.join(' → ') + ' %' + (p.gates && p.gates.length ? ', gates before step ' + p.gates.map((g) => g + 1).join(', ') : '') + '; ' + p.stepSeconds + ' s per step, windows of ' + p.windowSeconds + ' s; P99 ≤ ' + p.rules.p99Ratio + '× stable, errors ≤ ' + (p.rules.maxErrorRate * 100) + ' %, ' + p.rules.failuresToRollback + ' failing windows roll back') + '; started ' + esc(new Date(d.startedAt).toLocaleString()) + ' by ' + esc(d.actor || '') + '</span>'
    + '<table id="verdicts"><tr><th>#</th><th>window end</th><th>step</th><th>weight</th><th>verdict</th><th>candidate / stable requests</th><th>explanation</th></tr>' + rows + '</table>';
}
window.addEventListener('hashchange', () => deploymentPage().catch((e) => alert(e.message)));

document.querySelectorAll('[data-action]').forEach((b) => b.addEventListener('click', async () => {
  const action = b.dataset.action;
  if (!confirm((action === 'step' ? (b.textContent === 'Approve' ? 'Approve the held step of' : 'Move to the next step') : b.textContent) + ' the running deployment?')) return;
  // A step moves only from the step shown: a second click, or the gate webhook first, moves nothing more.
  const seen = action === 'step' && current ? { deployment: current.id, fromStep: current.status.stepIndex + 1, atGate: atGate(current) } : {};
  try { await api('/api/deployment/' + action, 'POST', { reason: 'from the dashboard', ...seen }); } catch (e) { alert(e.message); }
  await status();
}));

$('signout').addEventListener('click', async () => {
  try { await api('/logout', 'POST', {}); } finally { location.href = '/_changelens/'; }
});

const tick = async () => { try { await Promise.all([live(), status()]); } catch (e) { console.error(e); } };
tick(); lists(); deploymentPage().catch(() => {});
setInterval(tick, 1000);
setInterval(lists, 5000);
`;
