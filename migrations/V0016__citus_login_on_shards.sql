-- Citus: what a sign-in writes lives on the user's shard, so identify and access_token can be delegated; on plain PostgreSQL this does nothing.
--
-- Why (README "Citus", issue 16): Citus delegates a call of a distributed
-- function inside a transaction block only with force_delegation, and then
-- every query of the function must be routed by the very value of its
-- distribution argument to one shard of the co-located tables
-- (function_call_delegation.c, IsShardKeyValueAllowed). A sign-in touched two
-- coordinator tables keyed by user id; on Citus they become:
-- * auth.user_login_failures (V0007, the per-account ceiling): keyed by
--   username (citext) instead of user_id, distributed by it and co-located
--   with auth.users. The table is replaced by one of the same name (rows
--   carried over), so its columns differ from plain PostgreSQL's: username
--   instead of user_id. Its size is still bounded by auth.users (rows only
--   for accounts that exist).
-- * auth.session_starts (new): the session a delegated sign-in starts is
--   written here, on the user's shard: (username, id) with the start and the
--   latest exp of its tokens. auth.sessions stays on the coordinator, where
--   its triggers announce every end to the gateways (NOTIFY pgrpc) and keep
--   an ended session ended; a delegated function cannot write there. The
--   first time a session is used on the coordinator (refresh, logout,
--   logout_all, change_password, verify_token, me, a DBA's
--   auth.end_session / auth.end_user_sessions) sql/citus/sessions.sql moves
--   its row into auth.sessions, in the same distributed transaction, and
--   everything after that is as without Citus.
-- * The request roles and authenticator get USAGE on schema extensions, for
--   the citext username of identify and access_token on Citus.
do $$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  set local citus.multi_shard_modify_mode = 'sequential';

  create table auth.user_login_failures_by_name (
    username extensions.citext primary key,
    window_started_at timestamptz not null,
    failures int not null check (failures > 0)
  );
  insert into auth.user_login_failures_by_name (username, window_started_at, failures)
  select u.username, a.window_started_at, a.failures
    from auth.user_login_failures a join auth.users u on u.id = a.user_id;
  drop table auth.user_login_failures;
  alter table auth.user_login_failures_by_name rename to user_login_failures;
  alter index auth.user_login_failures_by_name_pkey rename to user_login_failures_pkey;
  comment on table auth.user_login_failures is
    'Failed logins of an account from every address since window_started_at; locked for everyone once max_failed_logins_per_user is reached, until the window ends (Citus: keyed by username, on the user''s shard)';
  alter table auth.user_login_failures owner to auth_owner;
  perform create_distributed_table('auth.user_login_failures', 'username', colocate_with => 'auth.users');

  create table auth.session_starts (
    username extensions.citext not null,
    id uuid not null,
    user_id bigint not null,
    created_at timestamptz not null,
    tokens_expire_at timestamptz not null,
    primary key (username, id)
  );
  comment on table auth.session_starts is
    'Citus only: sessions started by a delegated sign-in, on the user''s shard, not yet used on the coordinator; moved into auth.sessions at their first use there';
  alter table auth.session_starts owner to auth_owner;
  perform create_distributed_table('auth.session_starts', 'username', colocate_with => 'auth.users');

  -- identify and access_token take username as extensions.citext on Citus
  -- (sql/citus/identify.sql): the gateway names the type in the statements
  -- it prepares (as authenticator) and runs (as the request's role). USAGE
  -- lets them name the schema's types and functions; pgcrypto's and
  -- citext's functions touch no data.
  grant usage on schema extensions to authenticator, web_anon, app_user, app_admin;
end
$$;
