-- Citus only (nothing without the citus extension), right before
-- auth/sessions.sql: that file creates triggers on auth.users, which Citus
-- refuses on a distributed table (triggers there would run on the workers'
-- shards, far from the gateways listening on the coordinator), and on
-- auth.sessions, distributed too (V0017). With DDL propagation off for the rest of this
-- transaction they are created on the coordinator's table alone, where no
-- row ever is; citus/sessions_end.sql, right after auth/sessions.sql, drops
-- them again and turns propagation back on. The functions auth/sessions.sql
-- creates stay on the coordinator; citus/sessions.sql replaces them and adds
-- the keyed ones the workers run.
do $$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  set local citus.enable_ddl_propagation = off;
end
$$;
