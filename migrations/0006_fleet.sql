-- The fleet (fleet/): appliances that share an external Postgres and Redis. Each instance says it
-- is alive here once a second; one holds the controller lease and drives deployments. Both are
-- runtime state: an instance unseen for the grace is gone, a lease past its expiry is free.

CREATE TABLE fleet_instances (
  id          text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  -- The appliance's package version.
  version     text        NOT NULL,
  -- Where an operator (or a load balancer's health check) reaches it, as it advertises itself.
  address     text,
  started_at  timestamptz NOT NULL DEFAULT now(),
  last_seen   timestamptz NOT NULL DEFAULT now(),
  -- What it runs and routes now: colours, routing table, the deployment it follows (fleet/registry.ts).
  state       jsonb       NOT NULL DEFAULT '{}'
);

-- A lease with an expiry rather than an advisory lock: it works through a transaction pooler
-- (PgBouncer, managed Postgres proxies), where a session lock is not held by any one session, and
-- its epoch fences every write of the rollout (rollout/store.ts).
CREATE TABLE fleet_leases (
  -- 'controller', or 'run:<job>:<minute>': a scheduled run claimed for the fleet (fleet/scheduled-run.ts).
  name        text        PRIMARY KEY CHECK (name = 'controller' OR name LIKE 'run:%'),
  holder      text        NOT NULL,
  -- Incremented by every change of holder: a deposed controller's writes name an older one.
  epoch       bigint      NOT NULL,
  expires_at  timestamptz NOT NULL
);
