// `changelens status` for people: a header, the services, then one row per process.
import { summaryLines } from './backup-commands.js';
import type { ApplianceStatus, FleetSummary, MonitorStatusSummary, RolloutSummary, ServiceStatus } from '../lib/contracts/status.js';

export function formatStatus(s: ApplianceStatus): string {
  // Right after start, while the data dir is being prepared, the supervisor knows little yet.
  if (!Array.isArray(s.processes)) return `ChangeLens: ${s.phase} (preparing ${s.dataDir}), supervisor pid ${s.supervisorPid}\n`;
  const boot = s.boot.durationMs === null ? 'booting' : `booted in ${(s.boot.durationMs / 1000).toFixed(1)} s (${s.boot.firstBoot ? 'first boot' : 'warm'})`;
  const lines = [
    `ChangeLens ${s.version}: ${s.phase}, ${boot}, supervisor pid ${s.supervisorPid}`,
    `data dir  ${s.dataDir}`,
    ...stageLines(s.boot.stages),
    `active    ${s.activeColor}${s.rollout ? ` (release ${s.rollout.active.version})` : ''}`,
    ...(s.rollout?.deployment ? [`rollout   ${rolloutLine(s.rollout.deployment)}`] : []),
    ...fleetLines(s.rollout?.fleet),
    ...(s.rollout?.notifications ?? []).map(notifyLine),
    `postgres  ${service(s.services.postgres)}`,
    `redis     ${service(s.services.redis)}`,
    ...monitorLines(s.monitor),
    ...summaryLines(s.backups),
    ...(s.confinement ? [`releases  ${s.confinement.user ? `run as ${s.confinement.user.name} (uid ${s.confinement.user.uid})` : `NOT confined to a user of their own: ${s.confinement.userOff ?? 'unknown'}`}; Postgres ${s.confinement.database}; Redis ${s.confinement.redis}`] : []),
    `jobs      ${s.jobs ? `${s.jobs.waiting} waiting, ${s.jobs.pending} in progress, ${s.jobs.deadLetters} dead-lettered${s.jobs.byColor ? ` (blue ${s.jobs.byColor.blue.waiting}+${s.jobs.byColor.blue.pending}, green ${s.jobs.byColor.green.waiting}+${s.jobs.byColor.green.pending})` : ''}` : 'unknown (Redis does not answer)'}`,
    '',
  ];
  const rows = [['NAME', 'STATE', 'PID', 'UPTIME', 'RESTARTS', 'RSS', 'CPU']];
  for (const p of s.processes) {
    rows.push([
      p.name, p.state, p.pid === null ? '-' : String(p.pid), p.uptimeMs === null ? '-' : duration(p.uptimeMs),
      String(p.restarts), p.rssBytes === null ? '-' : `${(p.rssBytes / 1048576).toFixed(1)} MB`, p.cpuPercent === null ? '-' : `${p.cpuPercent}%`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) lines.push(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  return lines.join('\n') + '\n';
}

/** Each stage of the boot, from the supervisor's start: what ran side by side and what waited. */
function stageLines(stages: ApplianceStatus['boot']['stages'] | undefined): string[] {
  if (!stages || stages.length === 0) return [];
  const s = (ms: number | null): string => (ms === null ? '…' : (ms / 1000).toFixed(2));
  const cells = stages.map((st) => `${st.name} ${s(st.startedMs)}→${s(st.readyMs)}`);
  const lines: string[] = [];
  for (let i = 0; i < cells.length; i += 4) lines.push(`${i === 0 ? 'boot (s)  ' : '          '}${cells.slice(i, i + 4).join(' · ')}`);
  return lines;
}

function monitorLines(m: MonitorStatusSummary | null | undefined): string[] {
  if (!m) return [];
  const lines = [`monitor   ${m.rules} rules every ${m.intervalSeconds} s; ${m.breaching.length ? `holding now: ${m.breaching.map((b) => `${b.rule} (${b.metric})`).join(', ')}` : 'none holding'}`];
  for (const a of m.recent.slice(0, 3)) lines.push(`          ${a.at.slice(11, 19)} ${a.rule}: ${a.ok ? '' : 'FAILED '}${a.outcome}`);
  return lines;
}

/** A fleet instance: who drives, and each instance's routing as it last said. */
function fleetLines(f: FleetSummary | undefined): string[] {
  if (!f) return [];
  const live = f.instances.filter((i) => !i.gone);
  const lines = [`fleet     instance ${f.instance}, one of ${live.length} live; controller ${f.lease ? `${f.lease.holder} (epoch ${f.lease.epoch})` : 'none yet'}`];
  for (const i of f.instances) {
    const r = i.state.routing;
    const routing = r ? (r.candidate && r.candidateWeight > 0 ? `${r.stable} ${Math.round((1 - r.candidateWeight) * 100)}% / ${r.candidate} ${Math.round(r.candidateWeight * 100)}%` : `${r.stable} 100%`) : 'routing unknown';
    const what = i.gone ? `GONE (unseen ${duration(i.lastSeenMsAgo)})` : `${i.state.controller ? 'controller' : 'follower'}, ${routing}${i.state.degraded ? `, stable only: ${i.state.degraded}` : ''}`;
    lines.push(`          ${i.id}${i.address ? ` ${i.address}` : ''}  ${what}`);
  }
  return lines;
}

function rolloutLine(d: NonNullable<RolloutSummary['deployment']>): string {
  return `${d.id}: ${d.strategy} of ${d.version} ${d.phase}, step ${d.step}/${d.steps}, weight ${Math.round(d.weight * 100)}%${d.lastExplanation ? `\n          last window ${d.lastExplanation}` : ''}`;
}

function service(s: ServiceStatus): string {
  return `${s.mode} ${s.endpoint}  ${s.reachable ? `reachable (${s.latencyMs} ms)` : `UNREACHABLE: ${s.error ?? 'no answer'}`}`;
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** A notification target: failing when its last failure is newer than its last delivery. */
function notifyLine(n: NonNullable<RolloutSummary['notifications']>[number]): string {
  const failing = n.lastFailure !== null && (n.lastOkAt === null || n.lastFailure.at > n.lastOkAt);
  const failure = n.lastFailure ? `${n.lastFailure.at} (${n.lastFailure.event} of ${n.lastFailure.version}): ${n.lastFailure.error}` : '';
  if (failing) return `notify    ${n.target}: FAILED ${failure}${n.lastOkAt ? `; last delivered ${n.lastOkAt}` : ''}`;
  return `notify    ${n.target}: ${n.lastOkAt ? `delivered ${n.lastOkAt}${n.lastFailure ? `; an earlier one failed ${failure}` : ''}` : 'nothing sent yet'}`;
}
