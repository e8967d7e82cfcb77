// The supervisor's control channel: HTTP over a unix socket in the data dir (mode 0600), so the
// CLI in another terminal asks the running supervisor instead of spawning its own pm2. The socket
// also serves as the lock that keeps a second supervisor off the same data dir.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import { ChangeLensError, CL_ERR_ALREADY_RUNNING, CL_ERR_NOT_RUNNING } from '../lib/errors.js';

export type ControlRoute = {
  method: 'GET' | 'POST';
  /** Matched against the whole path; capture groups are handed to the handler. */
  path: RegExp;
} & (
  | { handler: (...params: string[]) => Promise<unknown> | unknown }
  /** Writes its own answer, for as long as it likes (`changelens logs -f`). */
  | { stream: (res: ServerResponse, ...params: string[]) => void }
);

export async function startControlServer(socketPath: string, routes: readonly ControlRoute[]): Promise<Server> {
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    for (const route of routes) {
      const match = req.method === route.method ? route.path.exec(req.url ?? '') : null;
      if (!match) continue;
      if ('stream' in route) {
        route.stream(res, ...match.slice(1));
        return;
      }
      Promise.resolve()
        .then(() => route.handler(...match.slice(1)))
        .then(
          (body) => send(200, body),
          (err: Error) => send(err instanceof ChangeLensError ? err.statusCode : 500, err instanceof ChangeLensError ? err.toJSON() : { code: 'CL_ERR_INTERNAL', message: err.message }),
        );
      return;
    }
    send(404, { code: 'CL_ERR_NOT_FOUND', message: `no control route ${req.method} ${req.url}` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

/** Calls a route of a running supervisor; CL_ERR_NOT_RUNNING when none answers on the socket. */
export function queryControl<T>(socketPath: string, route: string, dataDir: string, options: { method?: 'GET' | 'POST'; timeoutMs?: number } = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: route, method: options.method ?? 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body) as T & { code?: string; message?: string; hint?: string; statusCode?: number };
          if (res.statusCode === 200) resolve(parsed);
          else reject(new ChangeLensError(parsed.code ?? 'CL_ERR_INTERNAL', res.statusCode ?? 500, parsed.message ?? body, parsed.hint ?? 'see the supervisor\'s logs'));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`supervisor did not answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new CL_ERR_NOT_RUNNING(dataDir));
      else reject(err);
    });
    req.end();
  });
}

/**
 * Reads a streaming route line by line (NDJSON) until the supervisor ends it or `signal` aborts;
 * CL_ERR_NOT_RUNNING when none answers. Resolves when the stream ends.
 */
export function streamControl(socketPath: string, route: string, dataDir: string, onLine: (line: string) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: route, method: 'GET', signal }, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          try {
            const parsed = JSON.parse(body) as { code?: string; message?: string; hint?: string };
            reject(new ChangeLensError(parsed.code ?? 'CL_ERR_INTERNAL', res.statusCode ?? 500, parsed.message ?? body, parsed.hint ?? 'see the supervisor\'s logs'));
          } catch (err) {
            reject(err);
          }
        });
        return;
      }
      let rest = '';
      res.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop()!;
        for (const line of parts) if (line !== '') onLine(line);
      });
      res.on('end', () => resolve());
      res.on('error', (err) => (signal?.aborted ? resolve() : reject(err)));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (signal?.aborted) resolve();
      else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new CL_ERR_NOT_RUNNING(dataDir));
      else reject(err);
    });
    req.end();
  });
}

/** Refuses to boot when another supervisor answers on the socket; removes a stale socket file. */
export async function claimControlSocket(socketPath: string, dataDir: string): Promise<void> {
  try {
    const other = await queryControl<{ supervisorPid?: number }>(socketPath, '/status', dataDir, { timeoutMs: 2_000 });
    throw new CL_ERR_ALREADY_RUNNING(dataDir, String(other.supervisorPid ?? 'unknown'));
  } catch (err) {
    // Only "nobody listens" means free; an answer of any kind, or a hung one, means taken.
    if (err instanceof CL_ERR_NOT_RUNNING) rmSync(socketPath, { force: true });
    else if (err instanceof CL_ERR_ALREADY_RUNNING) throw err;
    else throw new CL_ERR_ALREADY_RUNNING(dataDir, 'unknown', { cause: err });
  }
}
