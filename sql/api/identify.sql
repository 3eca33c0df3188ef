-- Identify with a Bearer token and no parameters: extend the token's session.
-- Its own function so that the Citus variant of api.identify (citus/identify.sql)
-- answers these calls with the same code, on the coordinator.
create function auth.identify_with_token() returns auth.token_result
language plpgsql volatile
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_claims json := auth.request_claims();
  v_token auth.jwt_claims;
  v_user auth.users;
  v_session auth.sessions;
begin
  -- Extend the session of the Authorization token (already verified by the
  -- gateway): same user, same session and orig_iat, never past orig_iat +
  -- refresh_limit. Extending rotates the session like refresh_token does,
  -- or a stolen token could be kept alive here without ever being noticed.
  if v_claims ->> 'sub' is null then
    raise sqlstate 'PT401' using message = 'no credentials',
      hint = 'Send username and password, or a token in the Authorization header to extend its session';
  end if;
  v_token := json_populate_record(null::auth.jwt_claims, v_claims);
  -- First the user (gone, disabled), then the session (ended, reused).
  v_user := auth.token_user(v_token.sub, 'PT401');
  v_session := auth.continue_session(v_token, 'PT401');
  if v_session.id is null then
    -- A retired token ended its session; the 401 is set, let that commit.
    return null;
  end if;
  if not auth.within_refresh_limit(floor(extract(epoch from v_session.created_at))::bigint) then
    raise sqlstate 'PT401' using message = 'session has expired',
      hint = 'Sign in again with username and password';
  end if;
  return row(auth.issue_claims(v_user, v_settings.token_lifetime, v_session));
end
$$;
comment on function auth.identify_with_token() is
  'identify without credentials: extend (rotating) the Authorization token''s session; PT401 no credentials, user gone, session ended or over.';
alter function auth.identify_with_token() owner to auth_owner;
revoke all on function auth.identify_with_token() from public;

-- POST /rpc/identify {username, password} → {"token"}; with a Bearer token and
-- no parameters → {"token"} extending that session.
create function api.identify(username text default null, password text default null)
returns auth.token_result
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_user auth.users;
begin
  if identify.username is null and identify.password is null then
    return auth.identify_with_token();
  end if;

  -- Credentials sign in afresh, whatever token came along: a user whose
  -- session ended must be able to sign in again.
  v_user := auth.login(identify.username, identify.password);
  if v_user.id is null then
    -- auth.login recorded the failure and set the 401/429 response; returning
    -- (not raising) lets that record commit.
    return null;
  end if;
  return row(auth.issue_claims(v_user, v_settings.token_lifetime, auth.start_session(v_user)));
end
$$;
comment on function api.identify(text, text) is
  'Sign in with username and password for a new session, or extend the Authorization token''s session (rotating it), answering {"token": <24-hour JWT>}. 401 bad credentials, no credentials, no session, session ended or over, token reused; 429 locked.';
alter function api.identify(text, text) owner to auth_owner;
revoke all on function api.identify(text, text) from public;
grant execute on function api.identify(text, text) to web_anon, app_user, app_admin;
