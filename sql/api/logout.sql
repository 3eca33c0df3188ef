-- POST /rpc/logout → 204: ends the session of the Authorization token.
create function api.logout() returns void
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
  -- An ended session is refused like everywhere (401), so logging out twice
  -- tells the client its token is dead.
  perform auth.live_session(v_token.sid, v_token.sub, 'PT401');
  perform auth.end_session(v_token.sid, 'logout');
end
$$;
comment on function api.logout() is
  'End the caller''s session: every token of it is refused from now on. 204; 401 anonymous, no session or session already ended.';
alter function api.logout() owner to auth_owner;
revoke all on function api.logout() from public;
grant execute on function api.logout() to app_user, app_admin;
