// The CLI's way to an appliance's admin API: this machine's public port on loopback by default, or a
// remote appliance (`--url`, CHANGELENS_URL) as CI uses it. The bearer token comes from
// CHANGELENS_ADMIN_TOKEN, or, for the local appliance only, from the data dir's secrets file.
import { Agent, fetch as undiciFetch } from 'undici';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../lib/config.js';
import { ChangeLensError, CL_ERR_CLI_USAGE, CL_ERR_UNREACHABLE } from '../lib/errors.js';
import { dataPaths } from '../lib/paths.js';

/** Node's fetch waits at most 300 s for response headers. */
const LONG_CALL_MS = 290_000;

export interface AdminClient {
  /** The admin API's base, e.g. http://127.0.0.1:8080/_changelens. */
  base: string;
  remote: boolean;
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
  delete<T>(path: string): Promise<T>;
  /** The bearer token this client sends (for tools that call the API themselves, like the benchmark). */
  token(): string;
  /** Streams a .tar.gz to PUT /api/releases/<version>/artifact with its sha256. */
  upload<T>(version: string, file: string): Promise<T>;
}

export interface AdminClientOptions {
  /** A remote appliance's URL (its public origin); default: this machine's. */
  url?: string | undefined;
  timeoutMs?: number;
}

export function adminClient(config: Config, options: AdminClientOptions = {}): AdminClient {
  const url = options.url ?? process.env.CHANGELENS_URL;
  const remote = url !== undefined && url !== '';
  let base: string;
  if (remote) {
    if (!/^https?:\/\/[^/\s]+/.test(url)) throw new CL_ERR_CLI_USAGE(`--url: expected http(s)://host[:port] of an appliance, got ${JSON.stringify(url)}`);
    base = `${url.replace(/\/+$/, '')}/_changelens`;
  } else {
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    base = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}/_changelens`;
  }
  const secrets = dataPaths(config.dataDir).secrets;
  let token = config.adminToken;

  const call = async <T>(method: string, path: string, body?: string | ReadableStream, headers: Record<string, string> = {}, timeoutMs = options.timeoutMs ?? 60_000): Promise<T> => {
    token ??= remote ? missingRemoteToken() : readToken(secrets);
    if (remote) warnIfPlain(base);
    let res: Response;
    try {
      // Node's fetch gives up waiting for response headers after 300 s: a long call (a backup)
      // gets an agent that waits as long as the call may take.
      const doFetch = timeoutMs > LONG_CALL_MS ? (undiciFetch as unknown as typeof fetch) : fetch;
      res = await doFetch(base + path, {
        method,
        ...(timeoutMs > LONG_CALL_MS ? { dispatcher: new Agent({ headersTimeout: timeoutMs, bodyTimeout: timeoutMs }) } : {}),
        headers: { authorization: `Bearer ${token}`, 'x-changelens-actor': actor(), ...headers },
        body,
        signal: AbortSignal.timeout(timeoutMs),
        ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      throw new CL_ERR_UNREACHABLE(base, describeFetchError(err));
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ChangeLensError('CL_ERR_INTERNAL', res.status, `${base} answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`, 'is it a ChangeLens appliance? check --url');
    }
    if (!res.ok) {
      const e = parsed as { code?: string; message?: string; hint?: string };
      throw new ChangeLensError(e.code ?? 'CL_ERR_INTERNAL', res.status, e.message ?? text, e.hint ?? 'see the appliance\'s logs');
    }
    return parsed as T;
  };

  return {
    base,
    remote,
    token: () => (token ??= remote ? missingRemoteToken() : readToken(secrets)),
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, JSON.stringify(body), { 'content-type': 'application/json' }),
    delete: (path) => call('DELETE', path),
    async upload(version, file) {
      let size: number;
      try {
        size = statSync(file).size;
      } catch (err) {
        throw new CL_ERR_CLI_USAGE(`--artifact ${file}: ${(err as Error).message}`);
      }
      const hash = createHash('sha256');
      await pipeline(createReadStream(file), hash);
      const sha256 = hash.digest('hex');
      // Streamed, never read whole into memory; a large artifact gets time in proportion.
      const body = Readable.toWeb(createReadStream(file)) as ReadableStream;
      return call('PUT', `/api/releases/${encodeURIComponent(version)}/artifact`, body, { 'content-type': 'application/gzip', 'x-changelens-sha256': sha256 }, 60_000 + Math.ceil(size / 100));
    },
  };
}

/** The cause of a failed fetch in a person's words: refused, unknown host, TLS, timeout. */
function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (err as { code?: string }).code ?? '';
  const message = cause?.message ?? (err as Error).message;
  if ((err as Error).name === 'TimeoutError') return 'no answer in time';
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return `TLS: ${code} ${message}`;
  return code && !message.includes(code) ? `${code} ${message}` : message;
}

function missingRemoteToken(): never {
  throw new ChangeLensError('CL_ERR_UNAUTHORIZED', 401, 'no admin token for the remote appliance: set CHANGELENS_ADMIN_TOKEN',
    'the token is CHANGELENS_ADMIN_TOKEN where the appliance runs, or adminToken in its <data>/state/secrets.json');
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

/** Who the audit log records: the login name (or the CI's, e.g. GITHUB_ACTOR). */
function actor(): string {
  const name = process.env.GITHUB_ACTOR ?? process.env.USER ?? process.env.LOGNAME ?? 'cli';
  return /^[\w.@:-]{1,60}$/.test(name) ? `cli:${name}` : 'cli';
}

let warnedPlain = false;
/** Once per run: the token is about to cross a network in clear text. */
function warnIfPlain(base: string): void {
  const url = new URL(base);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  if (url.protocol !== 'http:' || loopback || warnedPlain) return;
  warnedPlain = true;
  process.stderr.write(`warning: sending the admin token to ${url.host} over plain http: anyone on the way can read it and drive the appliance; use https (TLS in front of the appliance)\n`);
}
