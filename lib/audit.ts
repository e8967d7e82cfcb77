// The audit log (table audit_events): every change to production, by whom, with what outcome.
// The rollout store reads and writes it; the supervisor's monitor and backups write to it too,
// without reaching into rollout/.
import type { Pool } from './db.js';
import { newId } from './ids.js';

export interface AuditEvent {
  eventId: string;
  eventType: string;
  at: string;
  deploymentId: string | null;
  actor: string;
  version: string | null;
  details: Record<string, unknown>;
  success: boolean;
  error: string | null;
}

export type NewAuditEvent = Omit<AuditEvent, 'eventId' | 'at'>;

export async function recordAudit(pool: Pool, e: NewAuditEvent): Promise<AuditEvent> {
  const { rows } = await pool.query(
    `INSERT INTO audit_events (event_id, event_type, deployment_id, actor, version, details, success, error)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
    [newId('audit'), e.eventType, e.deploymentId, e.actor, e.version, JSON.stringify(e.details), e.success, e.error]);
  return toAudit(rows[0]);
}

export async function auditSince(pool: Pool, sinceMs: number, limit = 1000): Promise<AuditEvent[]> {
  const { rows } = await pool.query(
    'SELECT * FROM audit_events WHERE at >= to_timestamp($1 / 1000.0) ORDER BY at DESC LIMIT $2', [sinceMs, limit]);
  return rows.map(toAudit);
}

function toAudit(r: Record<string, any>): AuditEvent { // eslint-disable-line @typescript-eslint/no-explicit-any
  return {
    eventId: r.event_id, eventType: r.event_type, at: r.at ? (r.at as Date).toISOString() : '', deploymentId: r.deployment_id, actor: r.actor,
    version: r.version, details: r.details, success: r.success, error: r.error,
  };
}
