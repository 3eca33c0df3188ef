-- Citus only (nothing without the citus extension): auth.login of
-- auth/login.sql (per-address lock-out, per-account ceiling, bounded table)
-- with these changes for auth.login_failures and auth.users sharded by
-- username (migration V0015):
-- * the user and the address's failures are looked up by the distribution
--   column itself (username, citext, so still without case): one shard, not
--   all of them. The citext operator is named: with search_path =
--   pg_catalog a bare `=` would compare the names as text, on every shard;
-- * the sweep of stale per-address failures, which locks rows of every
--   shard, is a plain multi-shard DELETE run before the login's own row is
--   written (see below);
-- * the bound's count reads `select 1` rather than a select list of no
--   columns, which Citus 13.2 cannot plan on a distributed table (42601 "a
--   column definition list is required");
-- * nothing else: auth.user_login_failures stays on the coordinator, so the
--   account ceiling and its sweep are unchanged.
-- Same arguments, result, failures, lock-out and responses; the seed_lockout
-- tests run on Citus too. Keep in step with auth/login.sql.
do $citus$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  execute $def$
create or replace function auth.login(p_username text, p_password text) returns auth.users
language plpgsql volatile
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_key extensions.citext;
  v_source text := auth.client_source();
  v_failure auth.login_failures;
  v_account auth.user_login_failures;
  v_user auth.users;
  v_ok boolean;
  v_locked_until timestamptz;
  v_retry_after bigint;
  v_failures int;
begin
  perform auth.required(p_username, 'username');
  perform auth.required(p_password, 'password');
  v_key := lower(p_username);

  -- One attempt at a time per username (from any address), so that parallel
  -- guesses cannot all read "not locked" before any of them is counted, for
  -- the address's count and the account's alike.
  perform pg_advisory_xact_lock(hashtextextended('auth.login:' || v_key, 0));

  select * into v_failure from auth.login_failures f
   where f.username operator(extensions.=) v_key and f.source = v_source;
  select * into v_user from auth.users u where u.username operator(extensions.=) v_key;
  if v_user.id is not null then
    select * into v_account from auth.user_login_failures a where a.user_id = v_user.id;
  end if;

  -- Locked for this address (whether or not the account exists: the answer
  -- must not tell), or the account is locked for every address.
  v_locked_until := greatest(
    case when v_failure.locked_until > now() then v_failure.locked_until end,
    case when v_account.failures >= v_settings.max_failed_logins_per_user
          and v_account.window_started_at + v_settings.failure_window_per_user > now()
      then v_account.window_started_at + v_settings.failure_window_per_user end);
  if v_locked_until is not null then
    v_retry_after := greatest(1, ceil(extract(epoch from v_locked_until - now())));
    perform auth.respond_error(429, 'PT429', 'too many failed logins, try again later',
      format('locked for %s more seconds', v_retry_after),
      json_build_array(json_build_object('Retry-After', v_retry_after::text)));
    return null;
  end if;

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
    -- A success clears this address's count only. The account's count stays:
    -- an attacker would profit from every sign-in of the owner.
    delete from auth.login_failures f
     where f.username operator(extensions.=) v_key and f.source = v_source;
    return v_user;
  end if;

  -- Rows of auth.login_failures whose failures no longer count (the last
  -- one is older than lockout_duration and any lock has run out) mean the
  -- same as no row: drop them, of every shard. Citus cannot lock rows of
  -- several shards (FOR UPDATE ... SKIP LOCKED is router-only), so this
  -- waits instead of skipping; it runs before this login writes its own
  -- row, so a login never waits while holding a row another one's sweep
  -- could want (no deadlock), and a row a concurrent login is renewing is
  -- re-checked after that login commits.
  delete from auth.login_failures d
   where d.last_failed_at < now() - v_settings.lockout_duration
     and (d.locked_until is null or d.locked_until <= now());

  -- Count the failure for this address. A username no account can have is
  -- not recorded (it can never be locked usefully and would only fill the
  -- table); its answer is the same 401. Failures are consecutive while each
  -- comes within lockout_duration of the previous one and no lock has run
  -- out since.
  if v_key ~ '^[a-z0-9_.-]{3,32}$' then
    v_failures := case
      when v_failure.username is null
        or v_failure.locked_until is not null
        or v_failure.last_failed_at < now() - v_settings.lockout_duration then 1
      else v_failure.failures + 1
    end;
    -- Random usernames from random addresses must not grow the table without
    -- bound: a pair not yet tracked is recorded only while the table has room.
    -- Known and unknown usernames alike, so being full tells nothing either.
    -- The account ceiling below still counts every failure of a real account.
    if v_failure.username is not null
      or (select count(*) from (select 1 from auth.login_failures limit v_settings.max_login_failure_rows) t)
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

  -- Windows that have ended mean the same as no row: drop a few each time.
  -- auth.user_login_failures stays on the coordinator (V0015), so SKIP
  -- LOCKED works here as without Citus.
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
  $def$;
end
$citus$;
