-- Citus only (nothing without the citus extension), right before
-- auth/sessions.sql: that file creates triggers on auth.users, which Citus
-- refuses on a distributed table (triggers there would run on the workers'
-- shards, which see neither the coordinator's auth.sessions nor its
-- listening gateways). With DDL propagation off for the rest of this
-- transaction they are created on the coordinator's table alone, where no
-- row ever is; citus/sessions_end.sql, right after auth/sessions.sql, drops
-- them again and turns propagation back on. auth/sessions.sql creates no
-- object the workers need (its tables stay on the coordinator, migration
-- V0015).
do $$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  set local citus.enable_ddl_propagation = off;
end
$$;
