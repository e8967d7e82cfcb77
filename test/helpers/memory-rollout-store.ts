// The rollout store in memory, for the reconciler's test: the same port as PgRolloutStore
// (rollout/ports.ts) and held to the same contract (rollout-store-contract.ts), so what the
// reconciler is tested against behaves as Postgres does — conflicts, one running deployment,
// compare-and-swap, newest first.
import type { AuditEvent, NewAuditEvent } from '../../lib/audit.js';
import type { Color } from '../../lib/config.js';
import { isTerminal } from '../../lib/contracts/phases.js';
import { CL_ERR_DEPLOYMENT_RUNNING, CL_ERR_NOT_FOUND, CL_ERR_RELEASE_CONFLICT } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { sameEnv, staleRevision, type Bucket, type Deployment, type Pointers, type Release, type StoredVerdict } from '../../rollout/model.js';
import type { RolloutStore } from '../../rollout/ports.js';
import type { DeploymentStatus } from '../../rollout/state-machine.js';

/** Copies in and out, as rows would be: callers never share objects with the store. */
const copy = <T>(v: T): T => structuredClone(v);

export class MemoryRolloutStore implements RolloutStore {
  private readonly releaseRows = new Map<string, Release & { order: number }>();
  private pointerRows: Pointers = { active: null, lastGood: null };
  private readonly deploymentRows = new Map<string, Deployment & { order: number }>();
  private readonly verdictRows = new Map<string, StoredVerdict[]>();
  private readonly bucketRows = new Map<string, Bucket[]>();
  private readonly auditRows: AuditEvent[] = [];
  private order = 0;

  /** `now` stamps rows (the reconciler's test passes its hand-driven clock). */
  constructor(private readonly now: () => number = Date.now) {}

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  async putRelease(release: Omit<Release, 'createdAt'>): Promise<Release> {
    const existing = this.releaseRows.get(release.version);
    if (existing) {
      if (existing.artifact !== release.artifact) throw new CL_ERR_RELEASE_CONFLICT(release.version, 'artifact');
      if (!sameEnv(existing.env, release.env)) throw new CL_ERR_RELEASE_CONFLICT(release.version, 'env');
      return this.toRelease(existing);
    }
    const row = { ...copy(release), createdAt: this.iso(), order: ++this.order };
    this.releaseRows.set(release.version, row);
    return this.toRelease(row);
  }

  async release(version: string): Promise<Release | null> {
    const row = this.releaseRows.get(version);
    return row ? this.toRelease(row) : null;
  }

  async releases(): Promise<Array<Release & { active: boolean; lastGood: boolean }>> {
    return [...this.releaseRows.values()].sort((a, b) => b.order - a.order).map((r) => ({
      ...this.toRelease(r), active: this.pointerRows.active?.version === r.version, lastGood: this.pointerRows.lastGood?.version === r.version,
    }));
  }

  async pointers(): Promise<Pointers> {
    return copy(this.pointerRows);
  }

  async ensureInitialRelease(release: Omit<Release, 'createdAt'>, color: Color): Promise<void> {
    if (this.pointerRows.active || this.pointerRows.lastGood) return;
    if (!this.releaseRows.has(release.version)) this.releaseRows.set(release.version, { ...copy(release), createdAt: this.iso(), order: ++this.order });
    this.pointerRows = { active: { version: release.version, color }, lastGood: { version: release.version, color } };
  }

  async createDeployment(d: Omit<Deployment, 'startedAt' | 'updatedAt' | 'finishedAt' | 'result'>): Promise<Deployment> {
    const running = await this.runningDeployment();
    if (running) throw new CL_ERR_DEPLOYMENT_RUNNING(running.id, running.version, running.status.phase);
    const at = this.iso();
    const row = { ...copy(d), startedAt: at, updatedAt: at, finishedAt: null, result: null, order: ++this.order };
    this.deploymentRows.set(d.id, row);
    return this.toDeployment(row);
  }

  async saveStatus(id: string, from: DeploymentStatus, to: DeploymentStatus, options: { promoteTo?: { version: string; color: Color }; result?: unknown } = {}): Promise<void> {
    const row = this.deploymentRows.get(id);
    if (!row || row.status.revision !== from.revision) throw staleRevision(id, from.revision);
    row.status = copy(to);
    row.updatedAt = this.iso();
    row.finishedAt = isTerminal(to.phase) ? row.updatedAt : null;
    if (options.result !== undefined) row.result = copy(options.result);
    if (options.promoteTo) this.pointerRows = { active: copy(options.promoteTo), lastGood: copy(options.promoteTo) };
  }

  async saveResult(id: string, result: unknown): Promise<void> {
    const row = this.deploymentRows.get(id);
    if (row) row.result = copy(result);
  }

  async runningDeployment(): Promise<Deployment | null> {
    const row = [...this.deploymentRows.values()].find((d) => !isTerminal(d.status.phase));
    return row ? this.toDeployment(row) : null;
  }

  async deployment(id: string): Promise<Deployment> {
    const row = this.deploymentRows.get(id);
    if (!row) throw new CL_ERR_NOT_FOUND(`deployment ${id}`);
    return this.toDeployment(row);
  }

  async deployments(limit: number): Promise<Deployment[]> {
    return [...this.deploymentRows.values()].sort((a, b) => b.order - a.order).slice(0, limit).map((r) => this.toDeployment(r));
  }

  async addVerdict(deploymentId: string, v: Omit<StoredVerdict, 'at'>): Promise<void> {
    const rows = this.verdictRows.get(deploymentId) ?? [];
    if (rows.some((r) => r.seq === v.seq)) throw new Error(`duplicate key value violates unique constraint "verdicts_pkey" (${deploymentId}, ${v.seq})`);
    rows.push({ ...copy(v), at: this.iso() });
    this.verdictRows.set(deploymentId, rows);
  }

  async verdicts(deploymentId: string): Promise<StoredVerdict[]> {
    return copy([...(this.verdictRows.get(deploymentId) ?? [])].sort((a, b) => a.seq - b.seq));
  }

  async addBuckets(deploymentId: string, buckets: readonly Bucket[]): Promise<void> {
    const rows = this.bucketRows.get(deploymentId) ?? [];
    for (const b of buckets) if (!rows.some((r) => r.color === b.color && r.startMs === b.startMs)) rows.push(copy(b));
    this.bucketRows.set(deploymentId, rows);
  }

  async buckets(deploymentId: string): Promise<Bucket[]> {
    return copy([...(this.bucketRows.get(deploymentId) ?? [])].sort((a, b) => a.startMs - b.startMs || a.color.localeCompare(b.color)));
  }

  async audit(e: NewAuditEvent): Promise<AuditEvent> {
    const event: AuditEvent = { ...copy(e), eventId: newId('audit'), at: this.iso() };
    this.auditRows.push(event);
    return copy(event);
  }

  async auditSince(sinceMs: number, limit = 1000): Promise<AuditEvent[]> {
    return copy(this.auditRows.filter((e) => Date.parse(e.at) >= sinceMs).reverse().slice(0, limit));
  }

  private toRelease({ order: _, ...r }: Release & { order: number }): Release {
    return copy(r);
  }

  private toDeployment({ order: _, ...d }: Deployment & { order: number }): Deployment {
    return copy(d);
  }
}
