-- POST /rpc/register {username, password, email, invite_code} → {"token": "<jwt>"}
create function api.register(
  username text default null,
  password text default null,
  email text default null,
  invite_code text default null
) returns auth.token_result
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_username text := auth.valid_username(register.username);
  v_email text := auth.valid_email(register.email);
  v_password text := auth.valid_password(register.password);
  v_code uuid;
  v_used uuid;
  v_hash text;
  v_user auth.users;
  v_constraint text;
begin
  perform auth.required(register.invite_code, 'invite_code');
  if register.invite_code ~* '^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$' then
    v_code := register.invite_code::uuid;
  end if;

  -- Unknown, malformed, used up or expired: one answer, so codes cannot be
  -- probed. Checked before hashing, so a made-up code costs no bcrypt; a
  -- plain read that consumes nothing (issue 11).
  if v_code is null or not exists (
    select from auth.invites i
     where i.code = v_code and i.uses < i.max_uses and i.expires_at > now()
  ) then
    raise sqlstate 'PT403' using message = 'invalid invite code';
  end if;

  -- Hash before taking the invite's row lock: bcrypt is the slow part, and
  -- concurrent registrations on one code wait on that lock.
  v_hash := extensions.crypt(v_password, extensions.gen_salt('bf', v_settings.bcrypt_cost));

  -- The use itself: the UPDATE takes the row lock; a concurrent registration
  -- on the same code waits, then re-checks uses < max_uses against the
  -- committed row, so a single-use code admits exactly one user however many
  -- passed the check above. A later failure in this transaction (username
  -- taken) rolls the use back.
  update auth.invites i
     set uses = i.uses + 1
   where i.code = v_code
     and i.uses < i.max_uses
     and i.expires_at > now()
  returning i.code into v_used;
  if v_used is null then
    raise sqlstate 'PT403' using message = 'invalid invite code';
  end if;

  begin
    insert into auth.users as u (username, email, password_hash, invite_code)
    values (v_username, v_email, v_hash, v_code)
    returning * into v_user;
  exception when unique_violation then
    -- A concurrent registration of the same name waits on the index entry and
    -- lands here once the first one commits.
    get stacked diagnostics v_constraint = constraint_name;
    raise sqlstate '23505' using message = case v_constraint
      when 'users_username_key' then 'username is already taken'
      when 'users_email_key' then 'email is already registered'
      else 'already registered'
    end;
  end;

  return row(auth.issue_claims(v_user, v_settings.token_lifetime, auth.start_session(v_user)));
end
$$;
comment on function api.register(text, text, text, text) is
  'Create an app_user account with an invite code and answer {"token": <24-hour JWT>} of a new session. 422 bad field, 403 invalid invite code, 409 username or email taken.';
alter function api.register(text, text, text, text) owner to auth_owner;
revoke all on function api.register(text, text, text, text) from public;
grant execute on function api.register(text, text, text, text) to web_anon, app_user, app_admin;
