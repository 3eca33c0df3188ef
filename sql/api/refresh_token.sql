-- POST /auth/refresh_token/ (and /rpc/refresh_token) {token}
-- → {"token", "expires_in", "user": {"username", "id"}}.
create function api.refresh_token(token auth.jwt_claims default null)
returns auth.session_result
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user auth.users;
  v_session auth.sessions;
  v_new auth.jwt_claims;
begin
  -- The gateway has verified the token (signature, exp, nbf, iat) and answers
  -- 400 itself when it is invalid; what is left is ours to check.
  if refresh_token.token is null then
    raise sqlstate 'PT422' using message = 'token is required';
  end if;
  v_user := auth.token_user((refresh_token.token).sub, 'PT400');
  -- Rotation: the token given is retired; given again after
  -- refresh_reuse_grace it ends the session.
  v_session := auth.continue_session(refresh_token.token, 'PT400');
  if v_session.id is null then
    -- Reuse ended the session and set the 400; returning lets that commit.
    return null;
  end if;
  if not auth.within_refresh_limit(floor(extract(epoch from v_session.created_at))::bigint) then
    raise sqlstate 'PT400' using message = 'refresh has expired',
      hint = 'Sign in again with username and password';
  end if;
  v_new := auth.issue_claims(v_user, (auth.current_settings()).access_token_lifetime, v_session);
  return row(v_new, auth.iso_utc(v_new.exp), auth.user_json(v_user));
end
$$;
comment on function api.refresh_token(auth.jwt_claims) is
  'A fresh 5-day token for the same session (same orig_iat, capped at orig_iat + 10 days), retiring the one given. 400 refresh has expired, no session, session ended, token already refreshed (which ends the session), user no longer exists or is disabled, or (gateway) an invalid token.';
alter function api.refresh_token(auth.jwt_claims) owner to auth_owner;
revoke all on function api.refresh_token(auth.jwt_claims) from public;
grant execute on function api.refresh_token(auth.jwt_claims) to web_anon, app_user, app_admin;
