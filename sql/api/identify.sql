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
  v_claims json := auth.request_claims();
  v_user auth.users;
  v_orig_iat bigint;
begin
  if identify.username is null and identify.password is null then
    -- Extend the session of the Authorization token (already verified by the
    -- gateway): same user, same orig_iat, never past orig_iat + refresh_limit.
    if v_claims ->> 'sub' is null then
      raise sqlstate 'PT401' using message = 'no credentials',
        hint = 'Send username and password, or a token in the Authorization header to extend its session';
    end if;
    v_user := auth.token_user(v_claims ->> 'sub', 'PT401');
    v_orig_iat := coalesce(v_claims ->> 'orig_iat', v_claims ->> 'iat')::bigint;
    if not auth.within_refresh_limit(v_orig_iat) then
      raise sqlstate 'PT401' using message = 'session has expired',
        hint = 'Sign in again with username and password';
    end if;
    return row(auth.issue_claims(v_user, v_settings.token_lifetime, v_orig_iat));
  end if;

  v_user := auth.login(identify.username, identify.password);
  if v_user.id is null then
    -- auth.login recorded the failure and set the 401/429 response; returning
    -- (not raising) lets that record commit.
    return null;
  end if;
  return row(auth.issue_claims(v_user, v_settings.token_lifetime, null));
end
$$;
comment on function api.identify(text, text) is
  'Sign in with username and password, or extend the Authorization token''s session, answering {"token": <24-hour JWT>}. 401 bad credentials, no credentials or session over; 429 locked.';
alter function api.identify(text, text) owner to auth_owner;
revoke all on function api.identify(text, text) from public;
grant execute on function api.identify(text, text) to web_anon, app_user, app_admin;
