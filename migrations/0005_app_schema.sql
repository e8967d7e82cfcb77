-- The app's data moves to its own schema, which the app's role owns (lib/app-database.ts, set up by
-- the supervisor after the migrations): release code connects as that role and cannot touch the
-- appliance's tables, which stay in public. Indexes, constraints and serial sequences move along.
CREATE SCHEMA app;
ALTER TABLE items SET SCHEMA app;
ALTER TABLE tasks SET SCHEMA app;
ALTER TABLE task_results SET SCHEMA app;
ALTER TABLE seeds SET SCHEMA app;

-- The audit log is append-only, for everyone who is not allowed to drop the trigger (the app's role
-- never is): a change to production cannot be unrecorded by a later UPDATE, DELETE or TRUNCATE.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
