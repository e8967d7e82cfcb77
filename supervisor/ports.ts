// A port already taken must stop the boot before anything starts, naming the port and its setting.
import { createServer } from 'node:net';
import { CL_ERR_PORT_IN_USE } from '../lib/errors.js';

export interface PortClaim {
  port: number;
  host: string;
  /** The setting that chose it, e.g. PORT or CHANGELENS_PG_PORT. */
  setting: string;
  service: string;
}

export async function assertPortsFree(claims: readonly PortClaim[]): Promise<void> {
  const taken: string[] = [];
  for (const claim of claims) {
    const problem = await tryListen(claim.port, claim.host);
    if (problem) taken.push(`port ${claim.port} on ${claim.host} (${claim.setting}, for ${claim.service}) is ${problem}`);
  }
  if (taken.length > 0) throw new CL_ERR_PORT_IN_USE(taken.join('; '));
}

function tryListen(port: number, host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code === 'EADDRINUSE' ? 'already in use' : err.code === 'EACCES' ? 'not allowed for this user' : `unusable (${err.code ?? err.message})`);
    });
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}
