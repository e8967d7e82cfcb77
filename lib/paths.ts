// Where everything lives in the data dir ($CHANGELENS_DATA_DIR, /data in the image).
import { join } from 'node:path';

export interface DataPaths {
  root: string;
  postgres: string;
  redis: string;
  backups: string;
  releases: string;
  state: string;
  secrets: string;
  /** The proxy's own folder in state/ (the service user's, when root): routing.json lives there. */
  proxyState: string;
  routing: string;
  redisConf: string;
  pm2Home: string;
  controlSocket: string;
  runLog: string;
  /** Which worker code each colour runs (supervisor/worker-sources.ts): paths only, readable by the proxy. */
  workers: string;
}

export function dataPaths(root: string): DataPaths {
  const state = join(root, 'state');
  return {
    root,
    postgres: join(root, 'postgres'),
    redis: join(root, 'redis'),
    backups: join(root, 'backups'),
    releases: join(root, 'releases'),
    state,
    secrets: join(state, 'secrets.json'),
    proxyState: join(state, 'proxy'),
    routing: join(state, 'proxy', 'routing.json'),
    // Beside Redis's data, owned by the user Redis runs as (it holds the password: mode 0600).
    redisConf: join(root, 'redis', 'redis.conf'),
    pm2Home: join(state, 'pm2'),
    controlSocket: join(state, 'supervisor.sock'),
    runLog: join(state, 'runs.jsonl'),
    workers: join(state, 'workers.json'),
  };
}
