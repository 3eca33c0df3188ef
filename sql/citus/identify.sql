-- Citus only (nothing without the citus extension): api.identify and
-- api.access_token signing in with username and password run on the worker
-- that holds the user's shard (issue 16). They are distributed functions,
-- keyed by username and co-located with auth.users, with force_delegation
-- (every pgrpc call is a transaction block), so Citus sends a plain call
-- (README "Citus": the call shape) to that worker, and everything the call
-- reads or writes must be on that shard, reached by the username exactly as
-- given:
-- * username is citext here (text in api/identify.sql and
--   api/access_token.sql): Citus compares the constant of each query's shard
--   key with the call's distribution argument, type included, and the key of
--   auth.users is citext (V0015). Clients see no difference: JSON strings
--   either way, and citext makes the case irrelevant, as lower() did;
-- * auth.login of citus/login.sql touches only that username's rows;
-- * the session starts on the shard (auth.sessions is distributed by
--   username, V0017, citus/sessions.sql).
-- * username's default is null, but not a constant: Citus 13.2 hashes a
--   constant NULL distribution argument without checking it
--   (ShardPlacementForFunctionColocatedWithDistTable: the coordinator's
--   backend crashes on `select * from api.identify()`, the call with a token
--   and no parameters). A volatile default is no constant: such a call is
--   not delegated and runs on the coordinator, with username null.
-- Extending a session with a token (identify without credentials) is not
-- delegated (the gateway delegates only calls that give every argument, see
-- README) and runs on the coordinator, as auth.identify_with_token, the
-- same function api/identify.sql calls. Same responses, rights,
-- comments and limits (api/_limits.sql) otherwise; keep in step with api/identify.sql and
-- api/access_token.sql.
do $citus$
declare
  v_identify text;
  v_access_token text;
  v_identify_config text[];
  v_access_token_config text[];
  v_setting text;
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  -- Function DDL and create_distributed_function in one transaction: over
  -- one connection per worker.
  set local citus.multi_shard_modify_mode = 'sequential';
  v_identify := obj_description('api.identify(text, text)'::regprocedure, 'pg_proc');
  v_access_token := obj_description('api.access_token(text, text)'::regprocedure, 'pg_proc');
  -- The admission limits api/_limits.sql set (pg_proc.proconfig), carried
  -- over to the replacements (this file runs right after it).
  select p.proconfig into v_identify_config from pg_proc p
   where p.oid = 'api.identify(text, text)'::regprocedure;
  select p.proconfig into v_access_token_config from pg_proc p
   where p.oid = 'api.access_token(text, text)'::regprocedure;

  -- identify with a token and no parameters runs auth.identify_with_token
  -- (api/identify.sql) on the coordinator: it uses auth.sessions.


  -- Citus replays the GRANT EXECUTEs below on the workers as their grantor,
  -- the functions' owner auth_owner, who must be able to look the function
  -- up there: USAGE on api (on the coordinator the migrating role grants).
  grant usage on schema api to auth_owner;
  drop function api.identify(text, text);
  execute $def$
create function api.identify(
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext,
  password text default null
)
returns auth.token_result
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_user auth.users;
  v_start auth.sessions;
begin
  if identify.username is null and identify.password is null then
    return auth.identify_with_token();
  end if;
  -- Credentials sign in afresh, whatever token came along.
  v_user := auth.login(identify.username, identify.password);
  if v_user.id is null then
    -- auth.login recorded the failure and set the 401/429 response; returning
    -- (not raising) lets that record commit.
    return null;
  end if;
  v_start := auth.start_session_on_shard(v_user, identify.username);
  return row(auth.issue_claims_on_shard(v_user, v_settings.token_lifetime, v_start, identify.username));
end
$$;
  $def$;
  execute format('comment on function api.identify(extensions.citext, text) is %L', v_identify);
  alter function api.identify(extensions.citext, text) owner to auth_owner;
  revoke all on function api.identify(extensions.citext, text) from public;
  grant execute on function api.identify(extensions.citext, text) to web_anon, app_user, app_admin;
  foreach v_setting in array coalesce(v_identify_config, '{}') loop
    if v_setting like 'pgrpc.%' then
      execute format('alter function api.identify(extensions.citext, text) set %s = %L',
        split_part(v_setting, '=', 1), substr(v_setting, strpos(v_setting, '=') + 1));
    end if;
  end loop;

  drop function api.access_token(text, text);
  execute $def$
create function api.access_token(
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext,
  password text default null,
  out access_token auth.jwt_claims,
  out expires_in text,
  out "user" text
)
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  -- The OUT parameter access_token hides the function's name as a qualifier.
  v_username alias for $1;
  v_password alias for $2;
  v_user auth.users;
  v_start auth.sessions;
begin
  v_user := auth.login(v_username, v_password);
  if v_user.id is null then
    -- The failure is recorded and the 401/429 response set; do not raise.
    return;
  end if;
  v_start := auth.start_session_on_shard(v_user, v_username);
  access_token := auth.issue_claims_on_shard(v_user, (auth.current_settings()).access_token_lifetime,
                                             v_start, v_username);
  expires_in := auth.iso_utc(access_token.exp);
  "user" := v_user.username;
end
$$;
  $def$;
  execute format('comment on function api.access_token(extensions.citext, text) is %L', v_access_token);
  alter function api.access_token(extensions.citext, text) owner to auth_owner;
  revoke all on function api.access_token(extensions.citext, text) from public;
  grant execute on function api.access_token(extensions.citext, text) to web_anon, app_user, app_admin;
  foreach v_setting in array coalesce(v_access_token_config, '{}') loop
    if v_setting like 'pgrpc.%' then
      execute format('alter function api.access_token(extensions.citext, text) set %s = %L',
        split_part(v_setting, '=', 1), substr(v_setting, strpos(v_setting, '=') + 1));
    end if;
  end loop;

  perform create_distributed_function('api.identify(extensions.citext, text)', 'username',
    colocate_with := 'auth.users', force_delegation := true);
  perform create_distributed_function('api.access_token(extensions.citext, text)', 'username',
    colocate_with := 'auth.users', force_delegation := true);
end
$citus$;
