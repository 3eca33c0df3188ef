-- Username + password → the user, with brute-force protection. Shared by
-- identify and access_token.

create function auth.login(p_username text, p_password text) returns auth.users
language plpgsql volatile
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_key text;
  v_failure auth.login_failures;
  v_user auth.users;
  v_ok boolean;
  v_retry_after bigint;
  v_failures int;
begin
  perform auth.required(p_username, 'username');
  perform auth.required(p_password, 'password');
  v_key := lower(p_username);

  -- One attempt at a time per username, so that parallel guesses cannot all
  -- read "not locked" before any of them is counted.
  perform pg_advisory_xact_lock(hashtextextended('auth.login:' || v_key, 0));

  select * into v_failure from auth.login_failures f where f.username = v_key;
  if v_failure.locked_until > now() then
    v_retry_after := greatest(1, ceil(extract(epoch from v_failure.locked_until - now())));
    perform auth.respond_error(429, 'PT429', 'too many failed logins, try again later',
      format('locked for %s more seconds', v_retry_after),
      json_build_array(json_build_object('Retry-After', v_retry_after::text)));
    return null;
  end if;

  select * into v_user from auth.users u where lower(u.username) = v_key;
  if v_user.id is null then
    -- Hash anyway so that an unknown username takes as long as a wrong password.
    perform extensions.crypt(p_password, extensions.gen_salt('bf', v_settings.bcrypt_cost));
    v_ok := false;
  else
    -- Longer than 72 bytes cannot have been registered; bcrypt would compare
    -- only the first 72, so refuse it after hashing like any other failure.
    v_ok := extensions.crypt(p_password, v_user.password_hash) = v_user.password_hash
      and octet_length(p_password) <= 72
      and v_user.disabled_at is null;
  end if;

  if v_ok then
    delete from auth.login_failures f where f.username = v_key;
    return v_user;
  end if;

  -- Count the failure. A username no account can have is not recorded (it can
  -- never be locked usefully and would only fill the table); its answer is the
  -- same 401. Failures are consecutive while each comes within
  -- lockout_duration of the previous one and no lock has run out since.
  if v_key ~ '^[a-z0-9_.-]{3,32}$' then
    v_failures := case
      when v_failure.username is null
        or v_failure.locked_until is not null
        or v_failure.last_failed_at < now() - v_settings.lockout_duration then 1
      else v_failure.failures + 1
    end;
    insert into auth.login_failures as f (username, failures, last_failed_at, locked_until)
    values (v_key, v_failures, now(),
            case when v_failures >= v_settings.max_failed_logins then now() + v_settings.lockout_duration end)
    on conflict (username) do update
      set failures = excluded.failures,
          last_failed_at = excluded.last_failed_at,
          locked_until = excluded.locked_until;
    -- Rows whose failures no longer count (the last one is older than
    -- lockout_duration, and any lock has run out) mean the same as no row:
    -- drop a few each time, so names tried once do not pile up. SKIP LOCKED:
    -- never wait for (or deadlock with) a login in progress.
    delete from auth.login_failures f
     where f.username in (
       select d.username from auth.login_failures d
        where d.last_failed_at < now() - v_settings.lockout_duration
          and (d.locked_until is null or d.locked_until <= now())
        limit 100
        for update skip locked);
  end if;
  perform auth.respond_error(401, 'PT401', 'invalid username or password');
  return null;
end
$$;
comment on function auth.login(text, text) is
  'The user if the password is right, the account enabled and the username not locked; else null after recording the failure and setting a 401 (or 429 + Retry-After) response. Never raises for a failed login, so the failure is committed.';
alter function auth.login(text, text) owner to auth_owner;
revoke all on function auth.login(text, text) from public;
