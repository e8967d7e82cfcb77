// The supervisor's control channel: HTTP over a unix socket in the data dir (mode 0600), so
// `changelens status` in another terminal asks the running supervisor instead of spawning its own
// pm2. The socket also serves as the lock that keeps a second supervisor off the same data dir.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { CL_ERR_ALREADY_RUNNING, CL_ERR_NOT_RUNNING } from '../lib/errors.js';

export type ControlRoutes = Record<string, () => Promise<unknown> | unknown>;

export async function startControlServer(socketPath: string, routes: ControlRoutes): Promise<Server> {
  const server = createServer((req, res) => {
    const handler = req.method === 'GET' ? routes[req.url ?? ''] : undefined;
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
      return;
    }
    Promise.resolve()
      .then(handler)
      .then(
        (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        (err: Error) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message })),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

/** GETs a route of a running supervisor; CL_ERR_NOT_RUNNING when none answers on the socket. */
export function queryControl<T>(socketPath: string, route: string, dataDir: string, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: route, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body) as T & { error?: string };
          if (res.statusCode !== 200) reject(new Error(`supervisor answered ${res.statusCode}: ${parsed.error ?? body}`));
          else resolve(parsed);
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

/** Refuses to boot when another supervisor answers on the socket; removes a stale socket file. */
export async function claimControlSocket(socketPath: string, dataDir: string): Promise<void> {
  try {
    const other = await queryControl<{ supervisorPid?: number }>(socketPath, '/status', dataDir, 2_000);
    throw new CL_ERR_ALREADY_RUNNING(dataDir, String(other.supervisorPid ?? 'unknown'));
  } catch (err) {
    if (err instanceof CL_ERR_ALREADY_RUNNING) throw err;
    rmSync(socketPath, { force: true });
  }
}
