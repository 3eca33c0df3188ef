-- POST /auth/access_token/ (and /rpc/access_token) {username, password}
-- → {"access_token", "expires_in", "user"}.
create function api.access_token(
  username text default null,
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
begin
  v_user := auth.login(v_username, v_password);
  if v_user.id is null then
    -- The failure is recorded and the 401/429 response set; do not raise.
    return;
  end if;
  access_token := auth.issue_claims(v_user, (auth.current_settings()).access_token_lifetime,
                                     auth.start_session(v_user));
  expires_in := auth.iso_utc(access_token.exp);
  "user" := v_user.username;
end
$$;
comment on function api.access_token(text, text) is
  'Sign in for a 5-day token: {"access_token", "expires_in" (ISO 8601 UTC), "user" (username)}. 401 bad credentials, 429 locked.';
alter function api.access_token(text, text) owner to auth_owner;
revoke all on function api.access_token(text, text) from public;
grant execute on function api.access_token(text, text) to web_anon, app_user, app_admin;
