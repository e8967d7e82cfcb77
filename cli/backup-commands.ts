// `changelens backup now|list|verify|restore`: thin clients of the admin API's /api/backups (the
// supervisor does the work). Each has --json; verify and restore exit 1 when the backup is bad.
import type { Command } from 'commander';
import { EXIT } from '../lib/errors.js';
import type { BackupSummary } from '../lib/contracts/status.js';
import type { BackupEntry, Manifest, RestoreResult, Verification } from '../backup/index.js';
import type { AdminClient } from './admin-client.js';
import { apiClient, examples, withApi, write, type ApiOptions } from './options.js';
import type { Act } from './command-tree.js';
import { withProgress } from './progress.js';

/** A dump of a large database takes a while; the admin call waits for it. */
const BACKUP_CALL_MS = 6 * 60 * 60_000;

export function registerBackupCommands(program: Command, act: Act): void {
  const backup = program.command('backup').description('back up, list, verify and restore Postgres and Redis (scheduled backups run by themselves)');
  const now = withApi(backup.command('now').description('back up Postgres and Redis now (or one of them); prints the manifest')
    .option('--pg', 'Postgres only').option('--redis', 'Redis only'));
  examples(now, ['changelens backup now', 'changelens backup now --pg --json']);
  now.action(act(async (o: ApiOptions & { pg?: boolean; redis?: boolean }) => {
    const kinds = [...(o.pg ? ['postgres'] : []), ...(o.redis ? ['redis'] : [])];
    const api = apiClient(o, BACKUP_CALL_MS);
    const manifest = await withProgress('backing up', api.post<Manifest>('/api/backups', kinds.length ? { kinds } : {}), { detail: running(api) });
    write(o.json, manifest, `backup ${manifest.id} taken in ${seconds(manifest.durationMs)}\n${manifest.files.map((f) => `  ${f.name.padEnd(14)} ${size(f.bytes).padStart(9)}  sha256 ${f.sha256}`).join('\n')}\n`);
    return EXIT.ok;
  }));

  const list = withApi(backup.command('list').description('backups, newest first, with size and verification; the next scheduled runs'));
  examples(list, ['changelens backup list', 'changelens backup list --json | jq \'.summary.overdue\'']);
  list.action(act(async (o: ApiOptions) => {
      const result = await apiClient(o, BACKUP_CALL_MS).get<{ summary: BackupSummary; backups: BackupEntry[] }>('/api/backups');
      const rows = result.backups.map((b) => `${b.id.padEnd(30)} ${b.kinds.join('+').padEnd(15)} ${size(b.totalBytes).padStart(9)}  ${seconds(b.durationMs).padStart(7)}  ${b.reason.padEnd(10)} ${b.verification ? (b.verification.ok ? `verified ${b.verification.at}` : 'FAILED verification') : 'not verified'}`);
      write(o.json, result, `${rows.length ? rows.join('\n') : 'no backups yet'}\n${summaryLines(result.summary).join('\n')}\n`);
      return EXIT.ok;
    }));

  const verify = withApi(backup.command('verify').argument('<id>', 'a backup id (changelens backup list)')
    .description('checksums, pg_restore --list, a restore into a scratch database and Redis; exits 1 when the backup is bad'));
  examples(verify, ['changelens backup verify "$(changelens backup list --json | jq -r \'.backups[0].id\')"']);
  verify.action(act(async (id: string, o: ApiOptions) => {
    const api = apiClient(o, BACKUP_CALL_MS);
    const v = await withProgress(`verifying ${id}`, api.post<Verification>(`/api/backups/${encodeURIComponent(id)}/verify`, {}), { detail: running(api) });
    write(o.json, v, `backup ${v.id}: ${v.ok ? 'good' : 'BAD'} (${seconds(v.durationMs)})\n${v.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`).join('\n')}\n`);
    return v.ok ? EXIT.ok : EXIT.failure;
  }));

  const restore = withApi(backup.command('restore').argument('<id>', 'a backup id (changelens backup list)')
    .description('restore over the live data: traffic is held (503 + Retry-After) meanwhile; its checksums are checked first'));
  examples(restore, ['changelens backup list', 'changelens backup restore <id>']);
  restore.action(act(async (id: string, o: ApiOptions) => {
    const api = apiClient(o, BACKUP_CALL_MS);
    const r = await withProgress(`restoring ${id} (traffic held)`, api.post<RestoreResult>(`/api/backups/${encodeURIComponent(id)}/restore`, {}), { detail: running(api) });
    const tables = Object.entries(r.tables).map(([t, n]) => `${t} ${n}`).join(', ');
    write(o.json, r, `restored ${r.id} (${r.kinds.join(' + ')}) in ${seconds(r.durationMs)}${tables ? `\n  tables: ${tables}` : ''}${r.redisKeys !== null ? `\n  redis keys: ${r.redisKeys}` : ''}\n`);
    return EXIT.ok;
  }));
}

/** The backup lines of `changelens backup list` and `changelens status`. */
export function summaryLines(s: BackupSummary | null | undefined): string[] {
  if (!s) return [];
  const last = s.kinds.map((k) => {
    const b = s.last[k];
    if (!b) return `${k} never`;
    return `${k} ${ago(b.ageSeconds)} ago (${size(b.bytes)}, ${b.verified === null ? 'not verified' : b.verified ? 'verified' : 'FAILED verification'})`;
  });
  const next = (Object.entries(s.next) as Array<[string, string | null]>).filter(([, at]) => at !== null).map(([k, at]) => `${k} ${at}`);
  const lines = [`backups   last: ${last.join('; ')}${s.overdue.length ? `; OVERDUE: ${s.overdue.join(', ')}` : ''}${s.running ? `; running: ${s.running}` : ''}`];
  lines.push(`          next: ${next.length ? next.join('; ') : 'no schedules'}`);
  if (s.lastFailure) lines.push(`          last failure ${s.lastFailure.at}: ${s.lastFailure.error}`);
  return lines;
}

/** What the supervisor says it is doing, for the progress line. */
const running = (api: AdminClient) => async (): Promise<string | null> => (await api.get<{ summary: BackupSummary }>('/api/backups').catch(() => null))?.summary.running ?? null;

const size = (bytes: number): string => (bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${(bytes / 1024).toFixed(1)} kB`);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const ago = (s: number): string => (s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} d`);
