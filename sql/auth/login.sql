-- Username + password → the user, with brute-force protection. Shared by
-- identify, access_token and change_password.
--
-- The policy (OWASP Authentication Cheat Sheet, "Account Lockout"): failures
-- lock a username per client address, so an attacker who fails from one
-- address does not lock the owner out from another; a ceiling per account
-- across all addresses bounds guessing spread over many addresses.

create function auth.client_source() returns text
language plpgsql stable
as $$
declare
  v_text text := nullif(btrim(current_setting('request.client_ip', true)), '');
  v_ip inet;
begin
  -- The gateway sets request.client_ip (its peer, or the client a trusted
  -- proxy names). Without it every attempt is the one source 'unknown', which
  -- is the old per-username lock.
  if v_text is null or length(v_text) > 64 then
    return 'unknown';
  end if;
  begin
    v_ip := v_text::inet;
  exception when invalid_text_representation then
    return 'unknown';
  end;
  -- An IPv4-mapped IPv6 address (::ffff:203.0.113.7) is that IPv4 address.
  if family(v_ip) = 6 and v_ip << inet '::ffff:0.0.0.0/96' then
    v_ip := regexp_replace(host(v_ip), '^::ffff:', '', 'i')::inet;
  end if;
  if family(v_ip) = 4 then
    return host(v_ip);
  end if;
  -- One IPv6 host usually holds a whole /64 and can pick any address in it:
  -- counting per address would give it 2^64 fresh sources.
  return network(set_masklen(v_ip, 64))::text;
end
$$;
comment on function auth.client_source() is
  'The client address of the request (request.client_ip) as a lock-out source: IPv4 as is, IPv6 as its /64, ''unknown'' when missing or malformed.';
alter function auth.client_source() owner to auth_owner;
revoke all on function auth.client_source() from public;

create function auth.respond_locked(p_locked_until timestamptz) returns void
language plpgsql volatile
as $$
declare
  v_retry_after bigint := greatest(1, ceil(extract(epoch from p_locked_until - now())));
begin
  -- What auth.respond_error(429, 'PT429', …) sets, written out: this is the
  -- answer to every attempt of a flood against a locked username, and a
  -- `language sql` function called from PL/pgSQL is planned again on every
  -- call (~35 µs, most of a locked attempt's cost in the database), where
  -- these statements are planned once per connection.
  perform set_config('response.status', '429', true),
          set_config('response.error', json_build_object(
            'code', 'PT429', 'message', 'too many failed logins, try again later',
            'details', format('locked for %s more seconds', v_retry_after), 'hint', null)::text, true),
          set_config('response.headers',
            json_build_array(json_build_object('Retry-After', v_retry_after::text))::text, true);
end
$$;
comment on function auth.respond_locked(timestamptz) is
  'Answer 429 PT429 with Retry-After until p_locked_until (what auth.respond_error would set), letting the transaction commit.';
alter function auth.respond_locked(timestamptz) owner to auth_owner;
revoke all on function auth.respond_locked(timestamptz) from public;

create function auth.lock_ends(
  p_address_locked_until timestamptz,
  p_account_failures int,
  p_account_window_started_at timestamptz,
  p_settings auth.settings
) returns timestamptz
language sql stable
as $$
  -- Locked for this address (whether or not the account exists: the answer
  -- must not tell), or the account is locked for every address; null when
  -- neither. One expression, so PL/pgSQL's callers get it inlined.
  select greatest(
    case when p_address_locked_until > now() then p_address_locked_until end,
    case when p_account_failures >= p_settings.max_failed_logins_per_user
          and p_account_window_started_at + p_settings.failure_window_per_user > now()
      then p_account_window_started_at + p_settings.failure_window_per_user end)
$$;
comment on function auth.lock_ends(timestamptz, int, timestamptz, auth.settings) is
  'When the lock on a login ends: the address''s lock or the account''s ceiling, whichever is later; null when not locked. Shared by auth.login and its Citus variant.';
alter function auth.lock_ends(timestamptz, int, timestamptz, auth.settings) owner to auth_owner;
revoke all on function auth.lock_ends(timestamptz, int, timestamptz, auth.settings) from public;

create function auth.next_failure_count(
  p_failures int,
  p_last_failed_at timestamptz,
  p_locked_until timestamptz,
  p_lockout_duration interval
) returns int
language sql stable
as $$
  -- Failures are consecutive while each comes within lockout_duration of the
  -- previous one and no lock has run out since; a pair without a row
  -- (p_failures null) starts at 1. One expression: inlined into PL/pgSQL.
  select case
    when p_failures is null
      or p_locked_until is not null
      or p_last_failed_at < now() - p_lockout_duration then 1
    else p_failures + 1
  end
$$;
comment on function auth.next_failure_count(int, timestamptz, timestamptz, interval) is
  'The count of consecutive failures of a (username, address) pair after one more. Shared by auth.login and its Citus variant.';
alter function auth.next_failure_count(int, timestamptz, timestamptz, interval) owner to auth_owner;
revoke all on function auth.next_failure_count(int, timestamptz, timestamptz, interval) from public;

create function auth.password_ok(
  p_password text,
  p_password_hash text,
  p_disabled_at timestamptz,
  p_bcrypt_cost int
) returns boolean
language plpgsql volatile
as $$
begin
  if p_password_hash is null then
    -- No such user: hash anyway so that an unknown username takes as long as
    -- a wrong password.
    perform extensions.crypt(p_password, extensions.gen_salt('bf', p_bcrypt_cost));
    return false;
  end if;
  -- Longer than 72 bytes cannot have been registered; bcrypt would compare
  -- only the first 72, so refuse it after hashing like any other failure.
  return extensions.crypt(p_password, p_password_hash) = p_password_hash
    and octet_length(p_password) <= 72
    and p_disabled_at is null;
end
$$;
comment on function auth.password_ok(text, text, timestamptz, int) is
  'Whether p_password signs in the account with p_password_hash (null: no such account, still hashed at p_bcrypt_cost) that is not disabled. Shared by auth.login and its Citus variant.';
alter function auth.password_ok(text, text, timestamptz, int) owner to auth_owner;
revoke all on function auth.password_ok(text, text, timestamptz, int) from public;

create function auth.login(p_username text, p_password text) returns auth.users
language plpgsql volatile
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_key text;
  v_source text := auth.client_source();
  v_failure auth.login_failures;
  v_account auth.user_login_failures;
  v_user auth.users;
  v_ok boolean;
  v_locked_until timestamptz;
  v_failures int;
begin
  perform auth.required(p_username, 'username');
  perform auth.required(p_password, 'password');
  v_key := lower(p_username);

  -- Locked already? Checked first, without the username's lock and with no
  -- write: a flood against a locked username is answered by this one
  -- statement. Sound without the lock because nothing but time unlocks (a
  -- success, the only thing that deletes a live row, cannot happen while
  -- locked, and the clean-up below deletes only rows whose lock ran out);
  -- whatever this misses because another attempt locked meanwhile, the check
  -- under the lock below finds. Same answer whether or not the account exists.
  -- The address's lock first (one index probe: a flood from one address),
  -- then the account's ceiling (a flood from many).
  select f.locked_until into v_locked_until from auth.login_failures f
   where f.username = v_key and f.source = v_source and f.locked_until > now();
  if v_locked_until is null then
    select a.window_started_at + v_settings.failure_window_per_user into v_locked_until
      from auth.users u join auth.user_login_failures a on a.user_id = u.id
     where lower(u.username) = v_key
       and a.failures >= v_settings.max_failed_logins_per_user
       and a.window_started_at + v_settings.failure_window_per_user > now();
  end if;
  if v_locked_until is not null then
    perform auth.respond_locked(v_locked_until);
    return null;
  end if;

  -- One attempt at a time per username (from any address), so that parallel
  -- guesses cannot all read "not locked" before any of them is counted, for
  -- the address's count and the account's alike.
  perform pg_advisory_xact_lock(hashtextextended('auth.login:' || v_key, 0));

  select * into v_failure from auth.login_failures f
   where f.username = v_key and f.source = v_source;
  select * into v_user from auth.users u where lower(u.username) = v_key;
  if v_user.id is not null then
    select * into v_account from auth.user_login_failures a where a.user_id = v_user.id;
  end if;

  -- Locked? Checked again under the lock: an attempt that locked it may have
  -- finished meanwhile.
  v_locked_until := auth.lock_ends(v_failure.locked_until, v_account.failures,
                                   v_account.window_started_at, v_settings);
  if v_locked_until is not null then
    perform auth.respond_locked(v_locked_until);
    return null;
  end if;

  v_ok := auth.password_ok(p_password, v_user.password_hash, v_user.disabled_at,
                           v_settings.bcrypt_cost);

  if v_ok then
    -- A success clears this address's count only. The account's count stays:
    -- an attacker would profit from every sign-in of the owner.
    delete from auth.login_failures f where f.username = v_key and f.source = v_source;
    return v_user;
  end if;

  -- Count the failure for this address. A username no account can have is
  -- not recorded (it can never be locked usefully and would only fill the
  -- table); its answer is the same 401.
  if v_key ~ '^[a-z0-9_.-]{3,32}$' then
    v_failures := auth.next_failure_count(
      case when v_failure.username is not null then v_failure.failures end,
      v_failure.last_failed_at, v_failure.locked_until, v_settings.lockout_duration);
    -- Random usernames from random addresses must not grow the table without
    -- bound: a pair not yet tracked is recorded only while the table has room.
    -- Known and unknown usernames alike, so being full tells nothing either.
    -- The account ceiling below still counts every failure of a real account.
    if v_failure.username is not null
      or (select count(*) from (select from auth.login_failures limit v_settings.max_login_failure_rows) t)
         < v_settings.max_login_failure_rows
    then
      insert into auth.login_failures as f (username, source, failures, last_failed_at, locked_until)
      values (v_key, v_source, v_failures, now(),
              case when v_failures >= v_settings.max_failed_logins then now() + v_settings.lockout_duration end)
      on conflict (username, source) do update
        set failures = excluded.failures,
            last_failed_at = excluded.last_failed_at,
            locked_until = excluded.locked_until;
    end if;
  end if;

  -- Count it for the account across addresses, in fixed windows of
  -- failure_window_per_user. Not reset by a success.
  if v_user.id is not null then
    insert into auth.user_login_failures as a (user_id, window_started_at, failures)
    values (v_user.id, now(), 1)
    on conflict (user_id) do update
      set window_started_at = case
            when a.window_started_at + v_settings.failure_window_per_user <= now() then now()
            else a.window_started_at end,
          failures = case
            when a.window_started_at + v_settings.failure_window_per_user <= now() then 1
            else a.failures + 1 end;
  end if;

  -- Rows whose failures no longer count (the last one is older than
  -- lockout_duration and any lock has run out; a window that has ended) mean
  -- the same as no row: drop a few each time, so that what was tried once
  -- does not pile up. SKIP LOCKED: never wait for (or deadlock with) a login
  -- in progress.
  delete from auth.login_failures f
   where (f.username, f.source) in (
     select d.username, d.source from auth.login_failures d
      where d.last_failed_at < now() - v_settings.lockout_duration
        and (d.locked_until is null or d.locked_until <= now())
      limit 100
      for update skip locked);
  delete from auth.user_login_failures a
   where a.user_id in (
     select d.user_id from auth.user_login_failures d
      where d.window_started_at + v_settings.failure_window_per_user <= now()
      limit 100
      for update skip locked);

  perform auth.respond_error(401, 'PT401', 'invalid username or password');
  return null;
end
$$;
comment on function auth.login(text, text) is
  'The user if the password is right, the account enabled and neither the username locked for this client address nor the account over its ceiling; else null after recording the failure and setting a 401 (or 429 + Retry-After) response. Never raises for a failed login, so the failure is committed.';
alter function auth.login(text, text) owner to auth_owner;
revoke all on function auth.login(text, text) from public;
