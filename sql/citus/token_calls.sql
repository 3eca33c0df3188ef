-- Citus only (nothing without the citus extension): the calls that name
-- their user by a token run on the worker that holds the user's shard, as
-- identify and access_token do with credentials (citus/identify.sql):
-- refresh_token, verify_token, logout, logout_all, me and change_password.
--
-- A token names its user by id (sub), and auth.users is distributed by
-- username, so each of these takes one more parameter, username
-- (extensions.citext, the distribution argument), which the client does not
-- give: `pgrpc.from_claims = 'username'` has the gateway fill it with the
-- username claim of the call's token (the token parameter of refresh_token
-- and verify_token, else the request's own token) and ignore any value a
-- client sends (README "Citus"). Every row the call touches is then found
-- by that value on the user's shard (citus/sessions.sql: the *_on_shard
-- functions), and an end of a session is announced through the gateway
-- (auth.announce_session_end).
--
-- A token without a username claim (`pgrpc token`, or none at all) leaves
-- username to its default, a volatile NULL (a constant NULL distribution
-- argument crashes Citus 13.2, see citus/identify.sql): the call is not
-- delegated and runs on the coordinator, where the same functions find the
-- user and the session by id on every shard. Same responses, rights,
-- comments and limits as api/*.sql otherwise; keep in step with them.
-- identify with a token (extending the session) stays on the coordinator:
-- its username parameter is the sign-in's, which the client gives.
do $citus$
declare
  v_old text[] := array[
    'api.refresh_token(auth.jwt_claims)', 'api.verify_token(auth.jwt_claims)',
    'api.logout()', 'api.logout_all()', 'api.me()', 'api.change_password(text, text)'];
  v_new text[] := array[
    'api.refresh_token(auth.jwt_claims, extensions.citext)',
    'api.verify_token(auth.jwt_claims, extensions.citext)',
    'api.logout(extensions.citext)', 'api.logout_all(extensions.citext)',
    'api.me(extensions.citext)', 'api.change_password(text, text, extensions.citext)'];
  v_roles text[] := array[
    'web_anon, app_user, app_admin', 'web_anon, app_user, app_admin',
    'app_user, app_admin', 'app_user, app_admin', 'app_user, app_admin', 'app_user, app_admin'];
  v_comments text[] := '{}';
  v_configs text[] := '{}';
  v_setting text;
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  -- Function DDL and create_distributed_function in one transaction: over
  -- one connection per worker.
  set local citus.multi_shard_modify_mode = 'sequential';
  -- The comments and the admission limits of api/*.sql and api/_limits.sql,
  -- carried over to the replacements.
  for i in 1 .. array_length(v_old, 1) loop
    v_comments[i] := obj_description(v_old[i]::regprocedure, 'pg_proc');
    v_configs[i] := (select coalesce(array_to_string(p.proconfig, E'\n'), '')
                       from pg_proc p where p.oid = v_old[i]::regprocedure);
    execute 'drop function ' || v_old[i];
  end loop;

  execute $def$
create function api.refresh_token(
  token auth.jwt_claims default null,
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext
)
returns auth.session_result
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key extensions.citext := refresh_token.username;
  v_user auth.users;
  v_session auth.sessions;
  v_new auth.jwt_claims;
begin
  if refresh_token.token is null then
    raise sqlstate 'PT422' using message = 'token is required';
  end if;
  v_user := auth.token_user_on_shard((refresh_token.token).sub, v_key, 'PT400');
  v_session := auth.continue_session_on_shard(refresh_token.token, v_key, 'PT400');
  if v_session.id is null then
    -- Reuse ended the session and set the 400; returning lets that commit.
    return null;
  end if;
  if not auth.within_refresh_limit(floor(extract(epoch from v_session.created_at))::bigint) then
    raise sqlstate 'PT400' using message = 'refresh has expired',
      hint = 'Sign in again with username and password';
  end if;
  v_new := auth.issue_claims_on_shard(v_user, (auth.current_settings()).access_token_lifetime, v_session, v_key);
  return row(v_new, auth.iso_utc(v_new.exp), auth.user_json(v_user));
end
$$;
  $def$;

  execute $def$
create function api.verify_token(
  token auth.jwt_claims default null,
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext
)
returns auth.session_result
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user auth.users;
begin
  if verify_token.token is null then
    raise sqlstate 'PT422' using message = 'token is required';
  end if;
  v_user := auth.token_user_on_shard((verify_token.token).sub, verify_token.username, 'PT400');
  perform auth.live_session_on_shard((verify_token.token).sid, (verify_token.token).sub,
                                     verify_token.username, 'PT400');
  return row(verify_token.token, auth.iso_utc((verify_token.token).exp), auth.user_json(v_user));
end
$$;
  $def$;

  execute $def$
create function api.logout(
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext
) returns void
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_token auth.jwt_claims := json_populate_record(null::auth.jwt_claims, auth.request_claims());
begin
  if v_token.sid is null then
    raise sqlstate 'PT401' using message = 'token has no session',
      hint = 'Only a token from register, identify or access_token belongs to a session';
  end if;
  perform auth.live_session_on_shard(v_token.sid, v_token.sub, logout.username, 'PT401');
  perform auth.end_session_on_shard(v_token.sid, logout.username, 'logout');
end
$$;
  $def$;

  execute $def$
create function api.logout_all(
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext
) returns void
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_token auth.jwt_claims := json_populate_record(null::auth.jwt_claims, auth.request_claims());
  v_user auth.users;
begin
  if v_token.sub is null then
    raise sqlstate 'PT401' using message = 'token names no user',
      hint = 'Sign in with username and password';
  end if;
  v_user := auth.token_user_on_shard(v_token.sub, logout_all.username, 'PT401');
  perform auth.live_session_on_shard(v_token.sid, v_token.sub, logout_all.username, 'PT401');
  perform auth.end_user_sessions_on_shard(v_user.id, logout_all.username, 'logout_all');
end
$$;
  $def$;

  execute $def$
create function api.me(
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext
)
returns auth.profile
language plpgsql stable
as $$
declare
  v_profile auth.profile;
begin
  -- SECURITY INVOKER, through the policy users_self, as api/me.sql; on the
  -- caller's shard when delegated (the policy runs on the worker).
  if me.username is null then
    select u.id, u.username, u.email, u.role, u.created_at into v_profile from auth.users u;
  else
    select u.id, u.username, u.email, u.role, u.created_at into v_profile from auth.users u
     where u.username operator(extensions.=) me.username;
  end if;
  if v_profile.id is null then
    raise sqlstate 'PT404' using message = 'no profile for this token',
      hint = 'The token''s user no longer exists, or the token names no user (sub)';
  end if;
  perform auth.check_session_on_shard(me.username);
  return v_profile;
end
$$;
  $def$;

  execute $def$
create function api.change_password(
  old_password text default null,
  new_password text default null,
  username extensions.citext default (case when pg_catalog.random() < 2 then null end)::extensions.citext
)
returns auth.token_result
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_token auth.jwt_claims := json_populate_record(null::auth.jwt_claims, auth.request_claims());
  v_key extensions.citext := change_password.username;
  v_user auth.users;
  v_checked auth.users;
  v_new text;
  v_hash text;
begin
  if v_token.sub is null then
    raise sqlstate 'PT401' using message = 'token names no user',
      hint = 'Sign in with username and password';
  end if;
  v_user := auth.token_user_on_shard(v_token.sub, v_key, 'PT401');
  v_key := coalesce(v_key, v_user.username);
  perform auth.live_session_on_shard(v_token.sid, v_token.sub, v_key, 'PT401');
  perform auth.required(change_password.old_password, 'old_password');
  v_new := auth.valid_password(change_password.new_password, 'new_password');

  -- Checked like a sign-in, with the same lock-out, on the user's shard.
  v_checked := auth.login(v_key, change_password.old_password);
  if v_checked.id is null then
    if current_setting('response.status', true) = '401' then
      perform auth.respond_error(403, 'PT403', 'old_password is wrong');
    end if;
    return null;
  end if;

  -- Hashed before the UPDATE (Citus runs no volatile function in an UPDATE
  -- of a distributed table); then every session of the user ends, this one
  -- included, and the caller continues in a new one.
  v_hash := extensions.crypt(v_new, extensions.gen_salt('bf', v_settings.bcrypt_cost));
  update auth.users u
     set password_hash = v_hash
   where u.username operator(extensions.=) v_key and u.id = v_user.id
  returning * into v_user;
  perform auth.end_user_sessions_on_shard(v_user.id, v_key, 'password_changed');
  return row(auth.issue_claims_on_shard(v_user, v_settings.token_lifetime,
                                        auth.start_session_on_shard(v_user, v_key), v_key));
end
$$;
  $def$;

  for i in 1 .. array_length(v_new, 1) loop
    execute format('comment on function %s is %L', v_new[i], v_comments[i]);
    execute format('alter function %s owner to auth_owner', v_new[i]);
    execute format('revoke all on function %s from public', v_new[i]);
    execute format('grant execute on function %s to %s', v_new[i], v_roles[i]);
    foreach v_setting in array coalesce(string_to_array(nullif(v_configs[i], ''), E'\n'), '{}') loop
      if v_setting like 'pgrpc.%' then
        execute format('alter function %s set %s = %L', v_new[i],
          split_part(v_setting, '=', 1), substr(v_setting, strpos(v_setting, '=') + 1));
      end if;
    end loop;
    execute format('alter function %s set pgrpc.from_claims = %L', v_new[i], 'username');
    perform create_distributed_function(v_new[i]::regprocedure, 'username',
      colocate_with := 'auth.users', force_delegation := true);
  end loop;
end
$citus$;
