-- Progressive delivery: releases, the active/last_good pointers, deployments (a persisted state
-- machine: rollout/state-machine.ts owns the phases), each deployment's verdicts and 5-second
-- buckets, and the audit log.

-- A release is immutable once recorded: deploying the same version again reuses it.
CREATE TABLE releases (
  version     text        PRIMARY KEY CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  -- 'builtin' (apps/api) or the directory under <data>/releases/ holding another app.
  artifact    text        NOT NULL,
  env         jsonb       NOT NULL DEFAULT '{}',
  created_by  text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- 'active' serves the stable traffic; 'last_good' is the last release a deployment promoted.
CREATE TABLE pointers (
  name        text        PRIMARY KEY CHECK (name IN ('active', 'last_good')),
  version     text        NOT NULL REFERENCES releases (version),
  color       text        NOT NULL CHECK (color IN ('blue', 'green')),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deployments (
  id               text        PRIMARY KEY,
  version          text        NOT NULL REFERENCES releases (version),
  strategy         text        NOT NULL CHECK (strategy IN ('canary', 'bluegreen', 'direct')),
  stable_version   text        NOT NULL,
  stable_color     text        NOT NULL CHECK (stable_color IN ('blue', 'green')),
  candidate_color  text        NOT NULL CHECK (candidate_color IN ('blue', 'green') AND candidate_color <> stable_color),
  phase            text        NOT NULL,
  step_index       integer     NOT NULL,
  steps            integer[]   NOT NULL,
  -- step seconds, window, rules, keep-warm and inspection times: what this deployment judges by.
  plan             jsonb       NOT NULL,
  reason           text,
  -- Compare-and-swap version: every transition increments it.
  revision         integer     NOT NULL,
  actor            text        NOT NULL,
  started_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  -- Filled when it ends: the export's summary (traffic, metrics per colour, rollback timing).
  result           jsonb
);
-- At most one deployment runs at a time, enforced by Postgres, not by a check-then-insert.
CREATE UNIQUE INDEX deployments_one_running ON deployments ((true))
  WHERE phase NOT IN ('promoted', 'rolled_back', 'aborted', 'failed');
CREATE INDEX deployments_started ON deployments (started_at DESC);

CREATE TABLE verdicts (
  deployment_id  text        NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  seq            integer     NOT NULL,
  at             timestamptz NOT NULL DEFAULT now(),
  step_index     integer     NOT NULL,
  weight         real        NOT NULL,
  verdict        text        NOT NULL CHECK (verdict IN ('pass', 'fail', 'insufficient')),
  window_start   timestamptz NOT NULL,
  window_end     timestamptz NOT NULL,
  samples        jsonb       NOT NULL,
  rules          jsonb       NOT NULL,
  -- One sentence: what fired, or why this window did not roll back.
  explanation    text        NOT NULL,
  PRIMARY KEY (deployment_id, seq)
);

-- The seed's 5-second buckets, per colour, for export and charts.
CREATE TABLE deployment_buckets (
  deployment_id  text        NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  color          text        NOT NULL CHECK (color IN ('blue', 'green')),
  bucket_start   timestamptz NOT NULL,
  duration_sec   real        NOT NULL,
  count          integer     NOT NULL,
  errors         integer     NOT NULL,
  p50_ms         real        NOT NULL,
  p95_ms         real        NOT NULL,
  p99_ms         real        NOT NULL,
  violations     integer     NOT NULL,
  PRIMARY KEY (deployment_id, color, bucket_start)
);

CREATE TABLE audit_events (
  event_id       text        PRIMARY KEY,
  event_type     text        NOT NULL,
  at             timestamptz NOT NULL DEFAULT now(),
  deployment_id  text,
  actor          text        NOT NULL,
  version        text,
  details        jsonb       NOT NULL DEFAULT '{}',
  success        boolean     NOT NULL,
  error          text
);
CREATE INDEX audit_events_at ON audit_events (at DESC);
