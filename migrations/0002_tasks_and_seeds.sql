-- Jobs the API hands to the worker (POST /api/process), their results, and the record of demo
-- data seeded on first boot (so seeding happens once).
CREATE TABLE tasks (
  id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  state       text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'completed', 'failed')),
  work_ms     integer     NOT NULL CHECK (work_ms >= 0),
  fail        boolean     NOT NULL DEFAULT false,
  attempts    integer     NOT NULL DEFAULT 0,
  error       text,
  trace_id    text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  finished_at timestamptz
);

-- One result per task, whatever happens: a job processed twice (a worker killed between writing
-- the result and acknowledging the message) inserts nothing the second time.
CREATE TABLE task_results (
  task_id     uuid        PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
  result      jsonb       NOT NULL,
  worker      text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE seeds (
  name        text        PRIMARY KEY,
  rows        integer     NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
);
