-- The worker's sweeper (apps/worker/sweeper.ts) finds tasks left queued with no entry on the jobs
-- stream (an acknowledged XADD that Redis lost: its last second was not on disk) and queues them
-- again, once: requeued_at marks the one time, and the partial index keeps the search cheap however
-- many tasks have finished.
ALTER TABLE tasks ADD COLUMN requeued_at timestamptz;
CREATE INDEX tasks_queued_by_age ON tasks (created_at) WHERE state = 'queued';
