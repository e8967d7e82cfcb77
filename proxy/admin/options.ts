// What the admin API's plugins are given by the proxy (proxy/main.ts wires them).
import type { Color, Config } from '../../lib/config.js';
import type { RolloutController, RolloutStore } from '../../rollout/index.js';
import type { BackupLink } from '../supervisor-link.js';
import type { AuthFailures } from './failed-auth.js';

export const ADMIN_PREFIX = '/_changelens';

export interface AdminApiOptions {
  token: string;
  controller: RolloutController;
  store: RolloutStore;
  config: Config;
  /** The Prometheus exposition (monitoring/metrics.ts). */
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** <data>/releases: where uploaded artifacts go. */
  releasesDir: string;
  /** Rollout state loaded from Postgres; until then the API answers 503. */
  ready: () => boolean;
  backups: BackupLink;
  /** The last `seconds` whole seconds of each colour's requests (the judge's own slices), for the dashboard. */
  live: (seconds: number) => LiveSecond[];
  /** Wrong tokens counted across every place a token is checked (one per proxy); default: the admin scope's own. */
  authFailures?: AuthFailures;
  /** Seals a deploy request's `secrets` (lib/contracts/release-secrets.ts); absent: secrets are refused. */
  releaseSecretsKey?: Buffer;
  /** The key preview credentials are signed with (lib/contracts/preview.ts); absent: no preview routes. */
  previews?: Buffer;
  /** The appliance's health details (processes, services, backups) for /api/health. */
  healthDetails?: () => Promise<{ status: 'ok' | 'degraded'; [key: string]: unknown }>;
  /** A fleet instance: this one, who holds the controller lease, and every instance known (status lists them). */
  fleet?: () => Promise<unknown>;
  /** Each colour's API, for its controls (regressions, metrics reset). */
  upstreams: Record<Color, string>;
  /** Each colour's worker (its health and control port). */
  workerUpstreams: Record<Color, string>;
  /** Holds every proxied request (503 + Retry-After) while set; cleared with null. */
  holdTraffic: (hold: { reason: string; retryAfterSeconds: number } | null) => void;
}

export interface LiveSecond {
  /** The second's start, ms since the epoch. */
  t: number;
  blue: { count: number; p50Ms: number; p99Ms: number; errorRate: number };
  green: { count: number; p50Ms: number; p99Ms: number; errorRate: number };
  /** Each colour's worker: job attempts that ended in the second, their P99 (enqueue to end) and failed share. */
  jobs: Record<'blue' | 'green', { count: number; p99Ms: number; errorRate: number }>;
}
