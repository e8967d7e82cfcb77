// Releases, pointers, deployments, verdicts and buckets in Postgres, and the audit log through
// lib/audit.ts (which the supervisor writes to as well). Only the rollout controller writes the
// rest; a deployment's row changes by compare-and-swap on its revision, so two writers can never
// both move it.
import type { Color } from '../lib/config.js';
import { auditSince, recordAudit, type AuditEvent, type NewAuditEvent } from '../lib/audit.js';
import { inTransaction, type Pool } from '../lib/db.js';
import { CL_ERR_DEPLOYMENT_RUNNING, CL_ERR_NOT_CONTROLLER, CL_ERR_NOT_FOUND, CL_ERR_RELEASE_CONFLICT } from '../lib/errors.js';
import { TERMINAL_PHASES_SQL } from '../lib/contracts/phases.js';
import type { DeploymentStatus, Phase } from './state-machine.js';
import { sameEnv, staleRevision, type Bucket, type Deployment, type Pointers, type Release, type StoredVerdict } from './model.js';
import type { RolloutStore } from './ports.js';

/** Which lease a fleet's controller writes under (fleet/lease.ts); null while it holds none. */
export type Fence = () => { holder: string; epoch: number } | null;

type Queryable = Pick<Pool, 'query'>;

/**
 * The rollout's store in the appliance's Postgres (the one `ports.ts` describes). In a fleet, every
 * write that moves a deployment checks, in its own transaction, that the lease is still this
 * writer's at its epoch: a deposed controller (paused past its lease) is refused, never acts.
 */
export class PgRolloutStore implements RolloutStore {
  constructor(private readonly pool: Pool, private readonly fence?: Fence) {}

  /** Runs a write, fenced by the lease's epoch in a fleet (the lease row is share-locked until it commits, so a take-over waits for it). */
  private async write<T>(what: string, fn: (q: Queryable) => Promise<T>): Promise<T> {
    if (!this.fence) return fn(this.pool);
    const lease = this.fence();
    if (!lease) throw new CL_ERR_NOT_CONTROLLER('it holds none now', what);
    const client = await this.pool.connect();
    try {
      return await inTransaction(client, async () => {
        const { rows } = await client.query<{ holder: string; epoch: string }>(
          `SELECT holder, epoch FROM fleet_leases WHERE name = 'controller' AND expires_at > now() FOR SHARE`);
        const row = rows[0];
        if (!row || row.holder !== lease.holder || Number(row.epoch) !== lease.epoch) {
          throw new CL_ERR_NOT_CONTROLLER(row ? `epoch ${lease.epoch} is over: epoch ${row.epoch} is held by ${row.holder}` : `epoch ${lease.epoch} expired`, what);
        }
        return fn(client);
      });
    } finally {
      client.release();
    }
  }

  /** Records a release, or returns the existing one when it is identical; a different one conflicts. */
  async putRelease(release: Omit<Release, 'createdAt'>): Promise<Release> {
    const { rows } = await this.pool.query(
      `INSERT INTO releases (version, artifact, env, created_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (version) DO NOTHING RETURNING *`,
      [release.version, release.artifact, JSON.stringify(release.env), release.createdBy]);
    if (rows[0]) return toRelease(rows[0]);
    const existing = await this.release(release.version);
    if (!existing) throw new Error(`release ${release.version} vanished`);
    if (existing.artifact !== release.artifact) throw new CL_ERR_RELEASE_CONFLICT(release.version, 'artifact');
    if (!sameEnv(existing.env, release.env)) throw new CL_ERR_RELEASE_CONFLICT(release.version, 'env');
    return existing;
  }

  async release(version: string): Promise<Release | null> {
    const { rows } = await this.pool.query('SELECT * FROM releases WHERE version = $1', [version]);
    return rows[0] ? toRelease(rows[0]) : null;
  }

  async releases(): Promise<Array<Release & { active: boolean; lastGood: boolean }>> {
    const { rows } = await this.pool.query(
      `SELECT r.*, a.version IS NOT NULL AS is_active, g.version IS NOT NULL AS is_last_good
       FROM releases r
       LEFT JOIN pointers a ON a.name = 'active' AND a.version = r.version
       LEFT JOIN pointers g ON g.name = 'last_good' AND g.version = r.version
       ORDER BY r.created_at DESC`);
    return rows.map((row) => ({ ...toRelease(row), active: row.is_active as boolean, lastGood: row.is_last_good as boolean }));
  }

  async pointers(): Promise<Pointers> {
    const { rows } = await this.pool.query('SELECT name, version, color FROM pointers');
    const get = (name: string) => {
      const row = rows.find((r) => r.name === name);
      return row ? { version: row.version as string, color: row.color as Color } : null;
    };
    return { active: get('active'), lastGood: get('last_good') };
  }

  /** The first boot's release becomes active and last_good when there are no pointers yet. */
  async ensureInitialRelease(release: Omit<Release, 'createdAt'>, color: Color): Promise<void> {
    const client = await this.pool.connect();
    try {
      await inTransaction(client, async () => {
        const { rows } = await client.query('SELECT 1 FROM pointers FOR UPDATE');
        if (rows.length > 0) return;
        await client.query(`INSERT INTO releases (version, artifact, env, created_by) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
          [release.version, release.artifact, JSON.stringify(release.env), release.createdBy]);
        await client.query(`INSERT INTO pointers (name, version, color) VALUES ('active', $1, $2), ('last_good', $1, $2)`, [release.version, color]);
      });
    } finally {
      client.release();
    }
  }

  /** Inserts a deployment in its first phase; refused when another one runs (a unique index decides). */
  async createDeployment(d: Omit<Deployment, 'startedAt' | 'updatedAt' | 'finishedAt' | 'result'>): Promise<Deployment> {
    try {
      const { rows } = await this.write(`deployment ${d.id}`, (q) => q.query(
        `INSERT INTO deployments (id, version, strategy, stable_version, stable_color, candidate_color, phase, step_index, steps, plan, reason, revision, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
        [d.id, d.version, d.strategy, d.stableVersion, d.stableColor, d.candidateColor, d.status.phase, d.status.stepIndex,
          d.status.steps, JSON.stringify(d.plan), d.status.reason, d.status.revision, d.actor]));
      return toDeployment(rows[0]);
    } catch (err) {
      if ((err as { constraint?: string }).constraint === 'deployments_one_running') {
        const running = await this.runningDeployment();
        throw new CL_ERR_DEPLOYMENT_RUNNING(running?.id ?? 'unknown', running?.version ?? 'unknown', running?.status.phase ?? 'running');
      }
      throw err;
    }
  }

  /**
   * Moves a deployment from `from` to `to` (the state machine's output). Fails when someone else
   * moved it first. `promoteTo` also sets both pointers in the same transaction.
   */
  async saveStatus(id: string, from: DeploymentStatus, to: DeploymentStatus, options: { promoteTo?: { version: string; color: Color }; result?: unknown } = {}): Promise<void> {
    const save = async (client: Queryable): Promise<void> => {
      const { rowCount } = await client.query(
        `UPDATE deployments SET phase = $3, step_index = $4, reason = $5, revision = $6, updated_at = now(),
           finished_at = CASE WHEN $3 IN ${TERMINAL_PHASES_SQL} THEN now() ELSE NULL END,
           result = COALESCE($7, result)
         WHERE id = $1 AND revision = $2`,
        [id, from.revision, to.phase, to.stepIndex, to.reason, to.revision, options.result === undefined ? null : JSON.stringify(options.result)]);
      if (rowCount !== 1) throw staleRevision(id, from.revision);
      if (options.promoteTo) {
        await client.query(
          `INSERT INTO pointers (name, version, color) VALUES ('active', $1, $2), ('last_good', $1, $2)
           ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, color = EXCLUDED.color, updated_at = now()`,
          [options.promoteTo.version, options.promoteTo.color]);
      }
    };
    if (this.fence) return this.write(`a change of deployment ${id}`, save);
    const client = await this.pool.connect();
    try {
      await inTransaction(client, () => save(client));
    } finally {
      client.release();
    }
  }

  async saveResult(id: string, result: unknown): Promise<void> {
    await this.write(`the result of deployment ${id}`, (q) => q.query('UPDATE deployments SET result = $2 WHERE id = $1', [id, JSON.stringify(result)]));
  }

  async runningDeployment(): Promise<Deployment | null> {
    const { rows } = await this.pool.query(`SELECT * FROM deployments WHERE phase NOT IN ${TERMINAL_PHASES_SQL} LIMIT 1`);
    return rows[0] ? toDeployment(rows[0]) : null;
  }

  async deployment(id: string): Promise<Deployment> {
    const { rows } = await this.pool.query('SELECT * FROM deployments WHERE id = $1', [id]);
    if (!rows[0]) throw new CL_ERR_NOT_FOUND(`deployment ${id}`);
    return toDeployment(rows[0]);
  }

  async deployments(limit: number): Promise<Deployment[]> {
    const { rows } = await this.pool.query('SELECT * FROM deployments ORDER BY started_at DESC LIMIT $1', [limit]);
    return rows.map(toDeployment);
  }

  async addVerdict(deploymentId: string, v: Omit<StoredVerdict, 'at'>): Promise<void> {
    await this.write(`a verdict of deployment ${deploymentId}`, (q) => q.query(
      `INSERT INTO verdicts (deployment_id, seq, step_index, weight, verdict, window_start, window_end, samples, rules, explanation)
       VALUES ($1, $2, $3, $4, $5, to_timestamp($6 / 1000.0), to_timestamp($7 / 1000.0), $8, $9, $10)`,
      [deploymentId, v.seq, v.stepIndex, v.weight, v.verdict, v.window.startMs, v.window.endMs, JSON.stringify(v.samples), JSON.stringify(v.rules), v.explanation]));
  }

  async verdicts(deploymentId: string): Promise<StoredVerdict[]> {
    const { rows } = await this.pool.query('SELECT * FROM verdicts WHERE deployment_id = $1 ORDER BY seq', [deploymentId]);
    return rows.map((r) => ({
      seq: r.seq, at: iso(r.at), stepIndex: r.step_index, weight: r.weight, verdict: r.verdict,
      window: { startMs: (r.window_start as Date).getTime(), endMs: (r.window_end as Date).getTime() },
      samples: r.samples, rules: r.rules, explanation: r.explanation,
    }));
  }

  async addBuckets(deploymentId: string, buckets: readonly Bucket[]): Promise<void> {
    if (buckets.length === 0) return;
    const values: unknown[] = [];
    const tuples = buckets.map((b, i) => {
      values.push(deploymentId, b.color, b.startMs, b.durationSec, b.count, b.errors, b.p50Ms, b.p95Ms, b.p99Ms, b.violations);
      const o = i * 10;
      return `($${o + 1}, $${o + 2}, to_timestamp($${o + 3} / 1000.0), $${o + 4}, $${o + 5}, $${o + 6}, $${o + 7}, $${o + 8}, $${o + 9}, $${o + 10})`;
    });
    await this.pool.query(
      `INSERT INTO deployment_buckets (deployment_id, color, bucket_start, duration_sec, count, errors, p50_ms, p95_ms, p99_ms, violations)
       VALUES ${tuples.join(', ')} ON CONFLICT DO NOTHING`, values);
  }

  async buckets(deploymentId: string): Promise<Bucket[]> {
    const { rows } = await this.pool.query('SELECT * FROM deployment_buckets WHERE deployment_id = $1 ORDER BY bucket_start, color', [deploymentId]);
    return rows.map((r) => ({
      color: r.color, startMs: (r.bucket_start as Date).getTime(), durationSec: r.duration_sec, count: r.count, errors: r.errors,
      p50Ms: r.p50_ms, p95Ms: r.p95_ms, p99Ms: r.p99_ms, violations: r.violations,
    }));
  }

  audit(e: NewAuditEvent): Promise<AuditEvent> {
    return recordAudit(this.pool, e);
  }

  auditSince(sinceMs: number, limit = 1000): Promise<AuditEvent[]> {
    return auditSince(this.pool, sinceMs, limit);
  }
}

type Row = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const iso = (d: Date | null): string => (d ? d.toISOString() : '');


function toRelease(r: Row): Release {
  return { version: r.version, artifact: r.artifact, env: r.env, createdBy: r.created_by, createdAt: iso(r.created_at) };
}

function toDeployment(r: Row): Deployment {
  return {
    id: r.id, version: r.version, strategy: r.strategy, stableVersion: r.stable_version, stableColor: r.stable_color,
    candidateColor: r.candidate_color, plan: r.plan, actor: r.actor,
    status: { phase: r.phase as Phase, stepIndex: r.step_index, steps: r.steps, reason: r.reason, revision: r.revision },
    startedAt: iso(r.started_at), updatedAt: iso(r.updated_at), finishedAt: r.finished_at ? iso(r.finished_at) : null, result: r.result,
  };
}

