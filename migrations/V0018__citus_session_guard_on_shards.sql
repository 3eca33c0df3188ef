-- Citus: the guard that keeps an ended session ended and a live one from being deleted, on every shard of auth.sessions; on plain PostgreSQL this does nothing (the trigger of sql/auth/sessions.sql guards the table there).
--
-- Why (README "Citus"): gateways remember ended sessions until their tokens
-- expire and reload the list from auth.sessions, so a session that resumed,
-- or a row deleted while its tokens live, would disagree with what they were
-- told. On Citus the rows are on the workers' shards (V0017), where
-- sql/auth/sessions.sql's trigger never fires (it is created on the
-- coordinator's table alone and dropped, sql/citus/sessions_end.sql). This
-- guard looks at OLD and NEW only, so it can run on each shard; Citus takes a
-- trigger on a distributed table only under citus.enable_unsafe_triggers
-- (a trigger that read other rows could see another shard's).
-- Why a migration and a schema of its own, not sql/: sql/ drops and creates
-- again every function of auth and pgrpc, and their triggers, on each load,
-- and dropping and creating a trigger on a distributed table in that one
-- transaction deadlocks in Citus 13.2 (40P01 "involved in a distributed
-- deadlock", on the second load). Created once here, in schema auth_guard,
-- the load leaves it alone.
do $$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  set local citus.multi_shard_modify_mode = 'sequential';

  create schema auth_guard authorization auth_owner;
  comment on schema auth_guard is
    'Citus only: the trigger function of the guard on the shards of auth.sessions (migration V0018; not code of sql/)';
  revoke all on schema auth_guard from public;

  create function auth_guard.sessions_keep_ended() returns trigger
  language plpgsql volatile
  security definer
  set search_path = pg_catalog, pg_temp
  as $fn$
  begin
    -- As auth.sessions_keep_ended (sql/auth/sessions.sql), on a shard.
    if tg_op = 'DELETE' then
      if old.tokens_expire_at > now() then
        raise exception 'a session whose tokens may still be valid cannot be deleted'
          using hint = 'End it instead: select auth.end_session(id, ''...'')';
      end if;
      return old;
    end if;
    if old.ended_at is not null and new.ended_at is distinct from old.ended_at then
      raise exception 'a session that has ended cannot be resumed or re-ended'
        using hint = 'The user signs in again for a new session';
    end if;
    return new;
  end
  $fn$;
  comment on function auth_guard.sessions_keep_ended() is
    'Citus trigger on the shards of auth.sessions: an ended session stays ended, and no session is deleted while its tokens may be valid.';
  alter function auth_guard.sessions_keep_ended() owner to auth_owner;
  revoke all on function auth_guard.sessions_keep_ended() from public;

  set local citus.enable_unsafe_triggers = on;
  create trigger sessions_keep_ended_on_shards before update of ended_at or delete on auth.sessions
    for each row execute function auth_guard.sessions_keep_ended();
end
$$;
