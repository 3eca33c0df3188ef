-- Citus only (nothing without the citus extension), right after
-- auth/sessions.sql (see citus/sessions_begin.sql): the triggers on
-- auth.users and auth.sessions could never fire on Citus (the rows
-- are on the workers), so they are dropped rather than left to look active,
-- while DDL propagation is still off (Citus would refuse the DROP TRIGGER
-- too); then propagation is on again. What they did is done instead by
-- api/change_password.sql for a password change, and by the DBA for a
-- user disabled, given another role or deleted: call
-- auth.end_user_sessions(id, reason) in the same transaction (README
-- "Citus").
do $$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  drop trigger if exists users_end_sessions on auth.users;
  drop trigger if exists users_end_sessions_on_delete on auth.users;
  -- Likewise those on auth.sessions (distributed by V0017): the session
  -- functions of citus/sessions.sql announce every end themselves, and a
  -- DBA ends sessions with auth.end_session / auth.end_user_sessions
  -- (README "Citus"); the guard that keeps an ended session ended runs on
  -- the shards instead (migration V0018, auth_guard.sessions_keep_ended).
  drop trigger if exists sessions_announce_end on auth.sessions;
  drop trigger if exists sessions_keep_ended on auth.sessions;
  set local citus.enable_ddl_propagation = on;
end
$$;
