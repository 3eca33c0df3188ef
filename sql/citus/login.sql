-- Citus only (nothing without the citus extension): auth.login of
-- auth/login.sql (per-address lock-out, per-account ceiling, bounded table)
-- for auth.users, auth.login_failures and auth.user_login_failures sharded
-- by username (migrations V0015, V0016), written so that api.identify and
-- api.access_token, distributed with force_delegation (citus/identify.sql),
-- run on the worker that holds the user's shard:
-- * every row is found and written by the username exactly as given
--   (v_key, citext: the same shard and the same row whatever the case).
--   Citus lets a forced delegation touch only rows whose shard key is that
--   very value (IsShardKeyValueAllowed compares the constants), so no
--   lower() and no name taken from a row. The citext operator is named: with
--   search_path = pg_catalog a bare `=` would compare the names as text, on
--   every shard;
-- * the account's row is locked (FOR UPDATE) besides the advisory lock: the
--   advisory lock is taken where the function runs (the worker when
--   delegated, the coordinator for change_password), the row lock on the
--   shard, so attempts on both paths still go one at a time;
-- * no statement reads or writes another shard. The stale failures of the
--   username are dropped on every failure; the rest of its shard is swept,
--   and the bound max_login_failure_rows is enforced, per shard, on the
--   shard's own table (auth.login_failure_shard): each shard holds at most
--   its share, ceil(max_login_failure_rows / shards). Run on the coordinator
--   (change_password, or a call that is not delegated) the shard is not
--   local, and the sweep and the count are those of the whole table, as
--   before;
-- * the bound's count reads `select 1` rather than a select list of no
--   columns, which Citus 13.2 cannot plan on a distributed table (42601 "a
--   column definition list is required").
-- Same arguments, result, failures, lock-out and responses; the seed_lockout
-- tests run on Citus too. Keep in step with auth/login.sql.
do $citus$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  execute $def$
create or replace function auth.login_failure_shard(p_key extensions.citext) returns regclass
language sql stable
as $$
  -- The shard of auth.login_failures holding p_key, when it is a table of
  -- this node (on a worker, inside a delegated call); null on the
  -- coordinator, which holds no shards.
  select to_regclass(pg_catalog.shard_name('auth.login_failures'::regclass,
    pg_catalog.get_shard_id_for_distribution_column('auth.login_failures', p_key)))
$$;
  $def$;
  execute $def$
comment on function auth.login_failure_shard(extensions.citext) is
  'Citus: the local shard of auth.login_failures that holds p_key, or null where it is not local (the coordinator).'
  $def$;
  alter function auth.login_failure_shard(extensions.citext) owner to auth_owner;
  revoke all on function auth.login_failure_shard(extensions.citext) from public;

  execute $def$
create or replace function auth.login(p_username text, p_password text) returns auth.users
language plpgsql volatile
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_key extensions.citext := p_username;
  v_source text := auth.client_source();
  v_failure auth.login_failures;
  v_account auth.user_login_failures;
  v_user auth.users;
  v_ok boolean;
  v_locked_until timestamptz;
  v_failures int;
  v_shard regclass;
  v_share int;
  v_used int;
begin
  perform auth.required(p_username, 'username');
  perform auth.required(p_password, 'password');

  -- Locked already? Checked first, without the username's lock and with no
  -- write, as in sql/auth/login.sql (which says why that is sound): a flood
  -- against a locked username is answered by one or two reads of its shard.
  select f.locked_until into v_locked_until from auth.login_failures f
   where f.username operator(extensions.=) v_key and f.source = v_source
     and f.locked_until > now();
  if v_locked_until is null then
    select a.window_started_at + v_settings.failure_window_per_user into v_locked_until
      from auth.user_login_failures a
     where a.username operator(extensions.=) v_key
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
  perform pg_advisory_xact_lock(hashtextextended('auth.login:' || lower(p_username), 0));

  select * into v_user from auth.users u where u.username operator(extensions.=) v_key for update;
  select * into v_failure from auth.login_failures f
   where f.username operator(extensions.=) v_key and f.source = v_source;
  if v_user.id is not null then
    select * into v_account from auth.user_login_failures a where a.username operator(extensions.=) v_key;
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
    delete from auth.login_failures f
     where f.username operator(extensions.=) v_key and f.source = v_source;
    return v_user;
  end if;

  -- Rows whose failures no longer count (the last one is older than
  -- lockout_duration and any lock has run out) mean the same as no row:
  -- this username's, then a few more of its shard. On a worker the shard is
  -- a table of its own, swept like auth/login.sql sweeps the whole table
  -- (SKIP LOCKED); on the coordinator a plain multi-shard DELETE, run before
  -- this login writes its own row, so a login never waits while holding a
  -- row another one's sweep could want.
  delete from auth.login_failures d
   where d.username operator(extensions.=) v_key
     and d.last_failed_at < now() - v_settings.lockout_duration
     and (d.locked_until is null or d.locked_until <= now());
  v_shard := auth.login_failure_shard(v_key);
  if v_shard is not null then
    execute format(
      'delete from %1$s f where (f.username, f.source) in (
         select d.username, d.source from %1$s d
          where d.last_failed_at < now() - $1
            and (d.locked_until is null or d.locked_until <= now())
          limit 100
          for update skip locked)', v_shard)
      using v_settings.lockout_duration;
  else
    delete from auth.login_failures d
     where d.last_failed_at < now() - v_settings.lockout_duration
       and (d.locked_until is null or d.locked_until <= now());
  end if;

  -- Count the failure for this address. A username no account can have is
  -- not recorded (it can never be locked usefully and would only fill the
  -- table); its answer is the same 401.
  if v_key ~ '^[a-z0-9_.-]{3,32}$' then
    v_failures := auth.next_failure_count(
      case when v_failure.username is not null then v_failure.failures end,
      v_failure.last_failed_at, v_failure.locked_until, v_settings.lockout_duration);
    -- Random usernames from random addresses must not grow the table without
    -- bound: a pair not yet tracked is recorded only while there is room.
    -- Known and unknown usernames alike, so being full tells nothing either.
    -- The account ceiling below still counts every failure of a real account.
    -- On a worker the room is the shard's share of the bound, counted on the
    -- shard itself (a count of the whole table would reach every shard).
    if v_failure.username is null then
      if v_shard is not null then
        v_share := ceil(v_settings.max_login_failure_rows::numeric
                        / greatest(1, (select count(*) from pg_catalog.pg_dist_shard s
                                        where s.logicalrelid = 'auth.login_failures'::regclass)));
        execute format('select count(*) from (select 1 from %s limit $1) t', v_shard)
          into v_used using v_share;
      else
        v_share := v_settings.max_login_failure_rows;
        v_used := (select count(*) from (select 1 from auth.login_failures limit v_share) t);
      end if;
    end if;
    if v_failure.username is not null or v_used < v_share then
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
  -- failure_window_per_user. Not reset by a success. Keyed by username on
  -- the user's shard (V0016); only accounts that exist have a row, so
  -- auth.users bounds the table, and an ended window is replaced here. The
  -- new values are computed first: Citus refuses now() in the DO UPDATE of
  -- a distributed table; the user's row lock above orders the attempts.
  if v_user.id is not null then
    if v_account.username is null
       or v_account.window_started_at + v_settings.failure_window_per_user <= now() then
      v_account.window_started_at := now();
      v_account.failures := 1;
    else
      v_account.failures := v_account.failures + 1;
    end if;
    insert into auth.user_login_failures as a (username, window_started_at, failures)
    values (v_key, v_account.window_started_at, v_account.failures)
    on conflict (username) do update
      set window_started_at = excluded.window_started_at,
          failures = excluded.failures;
  end if;

  perform auth.respond_error(401, 'PT401', 'invalid username or password');
  return null;
end
$$;
  $def$;
end
$citus$;
