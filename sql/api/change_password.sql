-- POST /rpc/change_password {old_password, new_password} → {"token"} of a new
-- session; every other session of the user ends.
create function api.change_password(old_password text default null, new_password text default null)
returns auth.token_result
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_token auth.jwt_claims := json_populate_record(null::auth.jwt_claims, auth.request_claims());
  v_user auth.users;
  v_checked auth.users;
  v_new text;
  v_hash text;
begin
  if v_token.sub is null then
    raise sqlstate 'PT401' using message = 'token names no user',
      hint = 'Sign in with username and password';
  end if;
  v_user := auth.token_user(v_token.sub, 'PT401');
  perform auth.live_session(v_token.sid, v_token.sub, 'PT401');
  perform auth.required(change_password.old_password, 'old_password');
  v_new := auth.valid_password(change_password.new_password, 'new_password');

  -- The old password is checked like a sign-in, with the same lock-out, so
  -- a stolen token cannot be used to guess the password without limit.
  v_checked := auth.login(v_user.username, change_password.old_password);
  if v_checked.id is null then
    -- auth.login recorded the failure and set 401 (or 429). A 401 would tell
    -- the client its token is bad; the token is fine, the password is not.
    if current_setting('response.status', true) = '401' then
      perform auth.respond_error(403, 'PT403', 'old_password is wrong');
    end if;
    return null;
  end if;

  -- Hashed before the UPDATE: Citus runs no volatile function in an UPDATE
  -- of a distributed table. Then every session of the user ends, this one
  -- included; the caller continues in a new one. Without Citus the trigger
  -- users_end_sessions has already ended them (the call below then finds
  -- none); on Citus that trigger cannot exist (citus/sessions_end.sql) and
  -- this call is what ends them.
  v_hash := extensions.crypt(v_new, extensions.gen_salt('bf', v_settings.bcrypt_cost));
  update auth.users u
     set password_hash = v_hash
   where u.id = v_user.id
  returning * into v_user;
  perform auth.end_user_sessions(v_user.id, 'password_changed');
  return row(auth.issue_claims(v_user, v_settings.token_lifetime, auth.start_session(v_user)));
end
$$;
comment on function api.change_password(text, text) is
  'Change the caller''s password; answers {"token": <24-hour JWT>} of a new session and ends all the user''s other sessions. 401 anonymous or session ended, 403 old_password wrong, 429 locked, 422 bad new_password.';
alter function api.change_password(text, text) owner to auth_owner;
revoke all on function api.change_password(text, text) from public;
grant execute on function api.change_password(text, text) to app_user, app_admin;
