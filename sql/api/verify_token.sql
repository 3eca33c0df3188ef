-- POST /auth/verify_token/ (and /rpc/verify_token) {token}
-- → the same token, "expires_in" and "user": {"username", "id"}.
create function api.verify_token(token auth.jwt_claims default null)
returns auth.session_result
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user auth.users;
begin
  -- Signature, expiry and form were checked by the gateway (400 with the
  -- reason); the claims come back unchanged and the gateway's canonical
  -- signing turns them into the very same token string.
  if verify_token.token is null then
    raise sqlstate 'PT422' using message = 'token is required';
  end if;
  v_user := auth.token_user((verify_token.token).sub, 'PT400');
  -- A token of an ended session is no longer valid. (A token retired by a
  -- refresh still is, until it expires: it can only not refresh again.)
  perform auth.live_session((verify_token.token).sid, (verify_token.token).sub, 'PT400');
  return row(verify_token.token, auth.iso_utc((verify_token.token).exp), auth.user_json(v_user));
end
$$;
comment on function api.verify_token(auth.jwt_claims) is
  'The token itself if it is valid, its user exists and is enabled and its session has not ended, with expires_in and user. 400 saying why otherwise.';
alter function api.verify_token(auth.jwt_claims) owner to auth_owner;
revoke all on function api.verify_token(auth.jwt_claims) from public;
grant execute on function api.verify_token(auth.jwt_claims) to web_anon, app_user, app_admin;
