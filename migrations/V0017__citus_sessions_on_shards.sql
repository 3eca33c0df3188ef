-- Citus: every session lives on its user's shard, so the token calls (refresh, verify, logout, logout_all, me, change_password) can be delegated too; on plain PostgreSQL this does nothing.
--
-- Why (README "Citus", issue 16): a delegated function may touch only the
-- shard of its distribution argument (V0016). The token calls continue, check
-- or end sessions, and auth.sessions stayed a table of the coordinator
-- (V0015), with the sign-ins' sessions in auth.session_starts on the shards
-- (V0016) and moved over at their first use. Now:
-- * auth.sessions gains a username column (citext: the username exactly as
--   the sign-in was given it, any case, so always the user's shard) and is
--   distributed by it, co-located with auth.users. Its primary key becomes
--   (username, id): Citus enforces only uniqueness that includes the
--   distribution column (ids are random UUIDs, never reused). Sessions of
--   users deleted before this migration (user_id null: ended when the user
--   went) get the key '#deleted:<session id>', which no username can be
--   ('#' is not allowed in one); no sign-in sweeps them (a sign-in sweeps
--   its own user's), so they stay until a DBA deletes the sessions whose
--   tokens have long expired (README "Citus").
-- * auth.session_starts is merged into it (generation 0) and dropped.
-- * The triggers of sql/auth/sessions.sql on auth.sessions (the NOTIFY that
--   announces an end, the guard that keeps an ended session ended) cannot
--   exist on a distributed table; on Citus the session functions announce
--   each end themselves (sql/citus/sessions.sql): with NOTIFY where they run
--   on the coordinator, and through the setting pgrpc.sessions_ended, which
--   the gateway relays as that NOTIFY, where they run on a worker.
-- * auth.profile, the row api.me answers: on Citus api.me takes the caller's
--   username as its distribution argument (sql/citus/token_calls.sql), which
--   an OUT parameter of the same name would clash with.
do $$
declare
  v_routine regprocedure;
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  set local citus.multi_shard_modify_mode = 'sequential';

  drop trigger if exists sessions_announce_end on auth.sessions;
  drop trigger if exists sessions_keep_ended on auth.sessions;

  alter table auth.sessions add column username extensions.citext;
  -- auth.sessions is still local here and auth.users distributed: the names
  -- are copied to the coordinator first, then joined in one statement.
  create temporary table v0017_user_names on commit drop as
    select u.id, u.username from auth.users u;
  update auth.sessions s set username = n.username from v0017_user_names n where n.id = s.user_id;
  drop table v0017_user_names;
  update auth.sessions s set username = '#deleted:' || s.id where s.username is null;
  alter table auth.sessions alter column username set not null;
  comment on column auth.sessions.username is
    'Citus only: the user''s name as the sign-in gave it (citext: any case), the distribution column (co-located with auth.users)';

  alter table auth.sessions drop constraint sessions_pkey;
  alter table auth.sessions add constraint sessions_pkey primary key (username, id);
  create index sessions_ended_at_idx on auth.sessions (ended_at) where ended_at is not null;

  insert into auth.sessions (username, id, user_id, created_at, generation, tokens_expire_at)
  select s.username, s.id, s.user_id, s.created_at, 0, s.tokens_expire_at
    from auth.session_starts s;
  -- The functions of the previous sql/citus/sessions.sql name the table's
  -- row type (sql/ is reloaded only after the migrations): dropped here,
  -- sql/ creates what it needs again.
  for v_routine in
    select distinct d.objid::regprocedure from pg_depend d
     where d.classid = 'pg_proc'::regclass and d.refclassid = 'pg_type'::regclass
       and d.refobjid in ('auth.session_starts'::regtype, 'auth.session_starts[]'::regtype)
  loop
    execute format('drop function %s', v_routine);
  end loop;
  drop table auth.session_starts;

  perform create_distributed_table('auth.sessions', 'username', colocate_with => 'auth.users');
  -- The rows are on the shards now; their old copy on the coordinator's
  -- disk is not.
  perform truncate_local_data_after_distributing_table('auth.sessions');

  create type auth.profile as (id bigint, username text, email text, role text, created_at timestamptz);
  comment on type auth.profile is 'Citus only: the result of api.me, {id, username, email, role, created_at}';
  alter type auth.profile owner to auth_owner;
end
$$;
