// A scheduled job (a backup) that must run once for the fleet, not once per instance: each instance's
// schedule fires, and the first to claim that minute's run in Postgres does it. The claim is a row
// of fleet_leases named after the run; claims a day old are cleared by later ones.
import type { Pool } from '../lib/db.js';

/** True for exactly one caller per `job` and minute across the fleet. */
export async function claimScheduledRun(pool: Pool, job: string, holder: string, atMs = Date.now()): Promise<boolean> {
  const minute = new Date(Math.floor(atMs / 60_000) * 60_000).toISOString();
  await pool.query(`DELETE FROM fleet_leases WHERE name LIKE 'run:%' AND expires_at < now()`);
  const { rowCount } = await pool.query(
    `INSERT INTO fleet_leases (name, holder, epoch, expires_at) VALUES ($1, $2, 0, now() + interval '1 day') ON CONFLICT (name) DO NOTHING`,
    [`run:${job}:${minute}`, holder]);
  return rowCount === 1;
}
