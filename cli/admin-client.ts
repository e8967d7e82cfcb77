// The CLI's way to the admin API of the appliance on this machine: the public port on loopback,
// with the bearer token from CHANGELENS_ADMIN_TOKEN or the data dir's secrets file.
import { readFileSync } from 'node:fs';
import type { Config } from '../lib/config.js';
import { ChangeLensError, CL_ERR_NOT_RUNNING } from '../lib/errors.js';
import { dataPaths } from '../lib/paths.js';

export interface AdminClient {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
}

export function adminClient(config: Config, options: { timeoutMs?: number } = {}): AdminClient {
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}/_changelens`;
  const paths = dataPaths(config.dataDir);
  let token = config.adminToken;
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    token ??= readToken(paths.secrets);
    let res: Response;
    try {
      res = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${token}`, 'x-changelens-actor': actor(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
      });
    } catch (err) {
      throw new CL_ERR_NOT_RUNNING(`${paths.root} (nothing answers on ${base}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message})`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ChangeLensError('CL_ERR_INTERNAL', res.status, `the admin API answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`, 'is another program listening on the public port?');
    }
    if (!res.ok) {
      const e = parsed as { code?: string; message?: string; hint?: string };
      throw new ChangeLensError(e.code ?? 'CL_ERR_INTERNAL', res.status, e.message ?? text, e.hint ?? 'see the appliance\'s logs');
    }
    return parsed as T;
  };
  return { get: (path) => call('GET', path), post: (path, body) => call('POST', path, body) };
}

function readToken(secretsPath: string): string {
  try {
    const token = (JSON.parse(readFileSync(secretsPath, 'utf8')) as { adminToken?: string }).adminToken;
    if (token) return token;
  } catch {
    // fall through: the same advice either way
  }
  throw new ChangeLensError('CL_ERR_UNAUTHORIZED', 401, `no admin token: CHANGELENS_ADMIN_TOKEN is not set and ${secretsPath} cannot be read`,
    'set CHANGELENS_ADMIN_TOKEN, or run as the user that owns the data dir');
}

/** Who the audit log records: $CHANGELENS_ACTOR is not a setting, so the login name. */
function actor(): string {
  const name = process.env.USER ?? process.env.LOGNAME ?? 'cli';
  return /^[\w.@:-]{1,64}$/.test(name) ? `cli:${name}`.slice(0, 64) : 'cli';
}
