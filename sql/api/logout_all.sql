-- POST /rpc/logout_all → 204: ends every session of the token's user.
create function api.logout_all() returns void
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
  v_user := auth.token_user(v_token.sub, 'PT401');
  -- A token of an ended session cannot end the others (it is refused
  -- everywhere); one without a session (pgrpc token --claim sub=…) can.
  perform auth.live_session(v_token.sid, v_token.sub, 'PT401');
  perform auth.end_user_sessions(v_user.id, 'logout_all');
end
$$;
comment on function api.logout_all() is
  'End every session of the caller''s user, on every device. 204; 401 anonymous, no user, user gone or disabled, session ended.';
alter function api.logout_all() owner to auth_owner;
revoke all on function api.logout_all() from public;
grant execute on function api.logout_all() to app_user, app_admin;
