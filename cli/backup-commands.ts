// `changelens backup now|list|verify|restore`: thin clients of the admin API's /api/backups (the
// supervisor does the work). Each has --json; verify and restore exit 1 when the backup is bad.
import { CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
import { loadConfig } from '../lib/config.js';
import type { BackupSummary } from '../lib/contracts/status.js';
import type { BackupEntry, Manifest, RestoreResult, Verification } from '../backup/index.js';
import { adminClient } from './admin-client.js';
import { parse } from './args.js';

export const BACKUP_USAGE = `  changelens backup now [--pg|--redis] [--json]
                                           back up Postgres and Redis now (or one of them); prints the manifest
  changelens backup list [--json]          backups, newest first, with size and verification; the next scheduled runs
  changelens backup verify <id> [--json]   checksums, pg_restore --list, a restore into a scratch database and Redis
  changelens backup restore <id> [--json]  restore over the live data: traffic is held (503 + Retry-After) meanwhile`;

const common = { json: { type: 'boolean' }, config: { type: 'string' }, url: { type: 'string' } } as const;
/** A dump of a large database takes a while; the admin call waits for it. */
const BACKUP_CALL_MS = 6 * 60 * 60_000;

export const backupCommands: Record<string, (args: string[]) => Promise<number>> = {
  async backup(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'now': return now(rest);
      case 'list': return list(rest);
      case 'verify': return verify(rest);
      case 'restore': return restore(rest);
      default: throw new CL_ERR_CLI_USAGE(`usage: changelens backup now|list|verify|restore (got ${sub === undefined ? 'nothing' : JSON.stringify(sub)})`);
    }
  },
};

async function now(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...common, pg: { type: 'boolean' }, redis: { type: 'boolean' } }, true);
  if (positionals.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens backup now [--pg|--redis] [--json]');
  const kinds = [...(values.pg ? ['postgres'] : []), ...(values.redis ? ['redis'] : [])];
  const manifest = await client(values).post<Manifest>('/api/backups', kinds.length ? { kinds } : {});
  write(values.json, manifest, `backup ${manifest.id} taken in ${seconds(manifest.durationMs)}\n${manifest.files.map((f) => `  ${f.name.padEnd(14)} ${size(f.bytes).padStart(9)}  sha256 ${f.sha256}`).join('\n')}\n`);
  return EXIT.ok;
}

async function list(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, common, true);
  if (positionals.length > 0) throw new CL_ERR_CLI_USAGE('usage: changelens backup list [--json]');
  const result = await client(values).get<{ summary: BackupSummary; backups: BackupEntry[] }>('/api/backups');
  const rows = result.backups.map((b) => `${b.id.padEnd(30)} ${b.kinds.join('+').padEnd(15)} ${size(b.totalBytes).padStart(9)}  ${seconds(b.durationMs).padStart(7)}  ${b.reason.padEnd(10)} ${b.verification ? (b.verification.ok ? `verified ${b.verification.at}` : 'FAILED verification') : 'not verified'}`);
  write(values.json, result, `${rows.length ? rows.join('\n') : 'no backups yet'}\n${summaryLines(result.summary).join('\n')}\n`);
  return EXIT.ok;
}

async function verify(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, common, true);
  if (positionals.length !== 1) throw new CL_ERR_CLI_USAGE('usage: changelens backup verify <id> [--json]');
  const v = await client(values).post<Verification>(`/api/backups/${encodeURIComponent(positionals[0]!)}/verify`, {});
  write(values.json, v, `backup ${v.id}: ${v.ok ? 'good' : 'BAD'} (${seconds(v.durationMs)})\n${v.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`).join('\n')}\n`);
  return v.ok ? EXIT.ok : EXIT.failure;
}

async function restore(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, common, true);
  if (positionals.length !== 1) throw new CL_ERR_CLI_USAGE('usage: changelens backup restore <id> [--json]');
  const r = await client(values).post<RestoreResult>(`/api/backups/${encodeURIComponent(positionals[0]!)}/restore`, {});
  const tables = Object.entries(r.tables).map(([t, n]) => `${t} ${n}`).join(', ');
  write(values.json, r, `restored ${r.id} (${r.kinds.join(' + ')}) in ${seconds(r.durationMs)}${tables ? `\n  tables: ${tables}` : ''}${r.redisKeys !== null ? `\n  redis keys: ${r.redisKeys}` : ''}\n`);
  return EXIT.ok;
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

function client(values: { config?: string | undefined; url?: string | undefined }) {
  return adminClient(loadConfig({ file: values.config }), { url: values.url, timeoutMs: BACKUP_CALL_MS });
}

function write(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text);
}

const size = (bytes: number): string => (bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${(bytes / 1024).toFixed(1)} kB`);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const ago = (s: number): string => (s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} d`);
