-- Citus only (nothing without the citus extension): sessions on their user's
-- shard (migration V0017: auth.sessions distributed by username, co-located
-- with auth.users), so that a delegated call (citus/identify.sql,
-- citus/token_calls.sql) can start, check, continue and end its user's
-- sessions on the worker it runs on.
--
-- A delegated function may touch only the shard of its distribution argument,
-- and Citus checks each query's shard key against the argument's very value
-- (function_call_delegation.c, IsShardKeyValueAllowed), so the functions
-- below that a delegated call uses take that value as p_key (the username
-- exactly as the call was given it; citext: any case is the same user) and
-- find every row by it. Given a null p_key (the call was not delegated: it
-- runs on the coordinator, e.g. with a token that has no username claim) they
-- find the session or user by id on every shard instead.
--
-- Ending a session is announced to the gateways (README "Sessions"): there
-- is no trigger on a distributed table, so auth.announce_session_end does it
-- for every function that ends sessions, with NOTIFY when it runs on the
-- coordinator (where the gateways listen) and, wherever it runs, by adding
-- the end to the transaction-local setting pgrpc.sessions_ended, which the
-- gateway reads after the call and relays as the same NOTIFY from the
-- coordinator, in the same transaction (a worker's NOTIFY reaches nobody).
--
-- The functions of auth/sessions.sql and auth.issue_claims keep their
-- signatures and are replaced by ones over the keyed functions, so the calls
-- that run on the coordinator (register, identify with a token, create_invite,
-- a DBA's auth.end_session / auth.end_user_sessions) work unchanged.
do $citus$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  -- Created on the workers too (DDL propagation is on again after
  -- citus/sessions_end.sql): the delegated calls run them there.

  execute $def$
create function auth.announce_session_end(p_sid uuid, p_tokens_expire_at timestamptz)
returns void
language plpgsql volatile
as $$
declare
  v_end text := format('%s %s', p_sid, floor(extract(epoch from p_tokens_expire_at))::bigint);
begin
  -- The gateway relays the setting's entries as NOTIFY pgrpc, 'session
  -- ended <sid> <exp>' before it commits (README "Citus"); PostgreSQL sends
  -- a notification once per transaction however often it is queued.
  perform set_config('pgrpc.sessions_ended',
    concat_ws(',', nullif(current_setting('pgrpc.sessions_ended', true), ''), v_end), true);
  if pg_catalog.citus_is_coordinator() then
    perform pg_notify('pgrpc', 'session ended ' || v_end);
  end if;
end
$$;
  $def$;
  comment on function auth.announce_session_end(uuid, timestamptz) is
    'Citus: tell the gateways that session p_sid ended (NOTIFY pgrpc on the coordinator; the setting pgrpc.sessions_ended, which the gateway relays, anywhere).';
  alter function auth.announce_session_end(uuid, timestamptz) owner to auth_owner;
  revoke all on function auth.announce_session_end(uuid, timestamptz) from public;

  execute $def$
create function auth.session_key(p_sid uuid) returns extensions.citext
language plpgsql stable
as $$
declare
  v_key extensions.citext;
begin
  -- By id alone: every shard, one connection per worker (a parallel read
  -- would keep the transaction from writing a reference table afterwards,
  -- as create_invite does). The coordinator only: a delegated call always
  -- has its key.
  perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
  select s.username into v_key from auth.sessions s where s.id = p_sid;
  return v_key;
end
$$;
  $def$;
  comment on function auth.session_key(uuid) is
    'Citus: the shard key (username) of session p_sid, looked for on every shard; null when there is none.';
  alter function auth.session_key(uuid) owner to auth_owner;
  revoke all on function auth.session_key(uuid) from public;

  execute $def$
create function auth.token_user_on_shard(p_sub text, p_key extensions.citext, p_errcode text)
returns auth.users
language plpgsql stable
as $$
declare
  v_user auth.users;
begin
  if p_key is null then
    return auth.token_user(p_sub, p_errcode);
  end if;
  -- As auth.token_user (auth/tokens.sql), on p_key's shard: the id must be
  -- the token's sub too.
  if p_sub ~ '^[0-9]{1,18}$' then
    select * into v_user from auth.users u
     where u.username operator(extensions.=) p_key and u.id = p_sub::bigint;
  end if;
  if v_user.id is null then
    raise exception using errcode = p_errcode, message = 'user no longer exists';
  end if;
  if v_user.disabled_at is not null then
    raise exception using errcode = p_errcode, message = 'user is disabled';
  end if;
  return v_user;
end
$$;
  $def$;
  comment on function auth.token_user_on_shard(text, extensions.citext, text) is
    'Citus: auth.token_user on the shard of username p_key (null: by id, on every shard).';
  alter function auth.token_user_on_shard(text, extensions.citext, text) owner to auth_owner;
  revoke all on function auth.token_user_on_shard(text, extensions.citext, text) from public;

  execute $def$
create function auth.start_session_on_shard(p_user auth.users, p_key extensions.citext)
returns auth.sessions
language plpgsql volatile
as $$
declare
  v_key extensions.citext := coalesce(p_key, p_user.username);
  v_session auth.sessions;
begin
  -- As auth.start_session (auth/sessions.sql); tokens_expire_at grows with
  -- each token issued (auth.issue_claims_on_shard).
  insert into auth.sessions as s (username, user_id, tokens_expire_at)
  values (v_key, p_user.id, now())
  returning * into v_session;
  -- This user's sessions none of whose tokens can be valid any more (a day
  -- past the last exp): dropped here, on the user's shard only.
  delete from auth.sessions s
   where s.username operator(extensions.=) v_key
     and s.tokens_expire_at < now() - interval '1 day';
  return v_session;
end
$$;
  $def$;
  comment on function auth.start_session_on_shard(auth.users, extensions.citext) is
    'Citus: a new session of p_user on the user''s shard (p_key: the username as the call gave it; null: the stored one), clearing the user''s sessions whose tokens have long expired.';
  alter function auth.start_session_on_shard(auth.users, extensions.citext) owner to auth_owner;
  revoke all on function auth.start_session_on_shard(auth.users, extensions.citext) from public;

  execute $def$
create function auth.issue_claims_on_shard(p_user auth.users, p_lifetime interval,
                                           p_session auth.sessions, p_key extensions.citext)
returns auth.jwt_claims
language plpgsql volatile
as $$
declare
  v_key extensions.citext := coalesce(p_key, p_session.username);
  v_now bigint := floor(extract(epoch from now()))::bigint;
  v_orig_iat bigint := floor(extract(epoch from p_session.created_at))::bigint;
  v_exp bigint;
begin
  -- As auth.issue_claims (auth/tokens.sql), keyed: keep the two in step.
  v_exp := least(v_now + extract(epoch from p_lifetime)::bigint,
                 v_orig_iat + (select extract(epoch from s.refresh_limit)::bigint from auth.current_settings() s));
  update auth.sessions s set tokens_expire_at = greatest(s.tokens_expire_at, to_timestamp(v_exp))
   where s.username operator(extensions.=) v_key and s.id = p_session.id;
  return row(p_user.role, p_user.id::text, p_user.username, v_now, v_exp, v_orig_iat,
             gen_random_uuid(), p_session.id, p_session.generation)::auth.jwt_claims;
end
$$;
  $def$;
  comment on function auth.issue_claims_on_shard(auth.users, interval, auth.sessions, extensions.citext) is
    'Citus: auth.issue_claims for session p_session on the shard of username p_key (null: the session''s own).';
  alter function auth.issue_claims_on_shard(auth.users, interval, auth.sessions, extensions.citext) owner to auth_owner;
  revoke all on function auth.issue_claims_on_shard(auth.users, interval, auth.sessions, extensions.citext) from public;

  execute $def$
create function auth.live_session_on_shard(p_sid uuid, p_sub text, p_key extensions.citext, p_errcode text)
returns auth.sessions
language plpgsql stable
as $$
declare
  v_session auth.sessions;
begin
  if p_sid is null then
    -- A token outside any session: nothing to check.
    return null;
  end if;
  if p_key is null then
    perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
    select * into v_session from auth.sessions s where s.id = p_sid;
  else
    select * into v_session from auth.sessions s
     where s.username operator(extensions.=) p_key and s.id = p_sid;
  end if;
  -- As auth.live_session (auth/sessions.sql): gone, ended or not this
  -- user's is one answer.
  if v_session.id is null or v_session.ended_at is not null
     or v_session.user_id is null or v_session.user_id::text <> p_sub then
    raise exception using errcode = p_errcode, message = 'session has ended',
      hint = 'Sign in again with username and password';
  end if;
  return v_session;
end
$$;
  $def$;
  comment on function auth.live_session_on_shard(uuid, text, extensions.citext, text) is
    'Citus: auth.live_session on the shard of username p_key (null: on every shard).';
  alter function auth.live_session_on_shard(uuid, text, extensions.citext, text) owner to auth_owner;
  revoke all on function auth.live_session_on_shard(uuid, text, extensions.citext, text) from public;

  execute $def$
create function auth.end_session_on_shard(p_sid uuid, p_key extensions.citext, p_reason text)
returns void
language plpgsql volatile
as $$
declare
  v_key extensions.citext := coalesce(p_key, auth.session_key(p_sid));
  v_ended record;
begin
  for v_ended in
    update auth.sessions s set ended_at = now(), end_reason = p_reason
     where s.username operator(extensions.=) v_key and s.id = p_sid and s.ended_at is null
    returning s.id, s.tokens_expire_at
  loop
    perform auth.announce_session_end(v_ended.id, v_ended.tokens_expire_at);
  end loop;
end
$$;
  $def$;
  comment on function auth.end_session_on_shard(uuid, extensions.citext, text) is
    'Citus: end session p_sid (if live) on the shard of username p_key (null: wherever it is) for p_reason, and announce it.';
  alter function auth.end_session_on_shard(uuid, extensions.citext, text) owner to auth_owner;
  revoke all on function auth.end_session_on_shard(uuid, extensions.citext, text) from public;

  execute $def$
create function auth.end_user_sessions_on_shard(p_user_id bigint, p_key extensions.citext, p_reason text)
returns void
language plpgsql volatile
as $$
declare
  v_ended record;
begin
  if p_key is null then
    perform auth.end_user_sessions(p_user_id, p_reason);
    return;
  end if;
  for v_ended in
    update auth.sessions s set ended_at = now(), end_reason = p_reason
     where s.username operator(extensions.=) p_key and s.user_id = p_user_id and s.ended_at is null
    returning s.id, s.tokens_expire_at
  loop
    perform auth.announce_session_end(v_ended.id, v_ended.tokens_expire_at);
  end loop;
end
$$;
  $def$;
  comment on function auth.end_user_sessions_on_shard(bigint, extensions.citext, text) is
    'Citus: end every live session of user p_user_id on the shard of username p_key (null: on every shard) for p_reason, and announce each.';
  alter function auth.end_user_sessions_on_shard(bigint, extensions.citext, text) owner to auth_owner;
  revoke all on function auth.end_user_sessions_on_shard(bigint, extensions.citext, text) from public;

  execute $def$
create function auth.continue_session_on_shard(p_token auth.jwt_claims, p_key extensions.citext, p_errcode text)
returns auth.sessions
language plpgsql volatile
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_key extensions.citext := p_key;
  v_session auth.sessions;
  v_gen int := coalesce(p_token.gen, 0);
begin
  -- As auth.continue_session (auth/sessions.sql), keyed: keep the two in step.
  if p_token.sid is null then
    raise exception using errcode = p_errcode, message = 'token has no session',
      hint = 'Sign in again with username and password: only tokens of a session can be refreshed';
  end if;
  if v_key is null then
    v_key := auth.session_key(p_token.sid);
  end if;
  perform auth.live_session_on_shard(p_token.sid, p_token.sub, v_key, p_errcode);
  -- The row lock orders concurrent refreshes of one session.
  select * into v_session from auth.sessions s
   where s.username operator(extensions.=) v_key and s.id = p_token.sid
     for update;
  if v_session.ended_at is not null then
    raise exception using errcode = p_errcode, message = 'session has ended',
      hint = 'Sign in again with username and password';
  end if;

  if v_gen = v_session.generation then
    update auth.sessions s set generation = s.generation + 1, rotated_at = now()
     where s.username operator(extensions.=) v_key and s.id = v_session.id
    returning * into v_session;
    return v_session;
  end if;
  if v_gen = v_session.generation - 1
     and v_session.rotated_at + v_settings.refresh_reuse_grace > now() then
    return v_session;
  end if;

  -- A retired token: end the session, announced, and answer without raising
  -- so that the end is committed.
  perform auth.end_session_on_shard(v_session.id, v_key, 'token_reused');
  perform auth.respond_error(substr(p_errcode, 3)::int, p_errcode, 'token has already been refreshed',
    'A refreshed token was presented again, which is what a stolen token looks like, so its session has been ended. Sign in again.');
  return null;
end
$$;
  $def$;
  comment on function auth.continue_session_on_shard(auth.jwt_claims, extensions.citext, text) is
    'Citus: auth.continue_session on the shard of username p_key (null: the session''s own, found on every shard).';
  alter function auth.continue_session_on_shard(auth.jwt_claims, extensions.citext, text) owner to auth_owner;
  revoke all on function auth.continue_session_on_shard(auth.jwt_claims, extensions.citext, text) from public;

  execute $def$
create function auth.check_session_on_shard(p_key extensions.citext) returns void
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_claims json := auth.request_claims();
begin
  -- As auth.check_session (auth/sessions.sql), for SECURITY INVOKER
  -- functions delegated with the caller's username as p_key.
  if v_claims ->> 'sid' is not null then
    if v_claims ->> 'sid' !~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' then
      raise sqlstate 'PT401' using message = 'session has ended',
        hint = 'Sign in again with username and password';
    end if;
    perform auth.live_session_on_shard((v_claims ->> 'sid')::uuid, v_claims ->> 'sub', p_key, 'PT401');
  end if;
end
$$;
  $def$;
  comment on function auth.check_session_on_shard(extensions.citext) is
    'Citus: auth.check_session on the shard of username p_key (the caller''s).';
  alter function auth.check_session_on_shard(extensions.citext) owner to auth_owner;
  revoke all on function auth.check_session_on_shard(extensions.citext) from public;
  grant execute on function auth.check_session_on_shard(extensions.citext) to app_user, app_admin;

  -- The functions of auth/sessions.sql and auth/tokens.sql that use
  -- auth.sessions, under their own names and signatures, over the keyed ones.
  execute $def$
create or replace function auth.start_session(p_user auth.users) returns auth.sessions
language plpgsql volatile
as $$
begin
  return auth.start_session_on_shard(p_user, null);
end
$$;
  $def$;
  execute $def$
create or replace function auth.issue_claims(p_user auth.users, p_lifetime interval, p_session auth.sessions)
returns auth.jwt_claims
language plpgsql volatile
as $$
begin
  return auth.issue_claims_on_shard(p_user, p_lifetime, p_session, null);
end
$$;
  $def$;
  execute $def$
create or replace function auth.live_session(p_sid uuid, p_sub text, p_errcode text) returns auth.sessions
language plpgsql stable
as $$
declare
  v_claims json := auth.request_claims();
begin
  -- The request's own token names its user: one shard. Another session (a
  -- token sent as a parameter to a call that was not delegated, a DBA's
  -- call) is looked for on every shard.
  if v_claims ->> 'sid' = p_sid::text then
    return auth.live_session_on_shard(p_sid, p_sub, (v_claims ->> 'username')::extensions.citext, p_errcode);
  end if;
  return auth.live_session_on_shard(p_sid, p_sub, null, p_errcode);
end
$$;
  $def$;
  execute $def$
create or replace function auth.continue_session(p_token auth.jwt_claims, p_errcode text) returns auth.sessions
language plpgsql volatile
as $$
begin
  -- The token's username claim is its session's key (null: found by id).
  return auth.continue_session_on_shard(p_token, p_token.username::extensions.citext, p_errcode);
end
$$;
  $def$;
  execute $def$
create or replace function auth.end_session(p_sid uuid, p_reason text) returns void
language plpgsql volatile
as $$
begin
  perform auth.end_session_on_shard(p_sid, null, p_reason);
end
$$;
  $def$;
  execute $def$
create or replace function auth.end_user_sessions(p_user_id bigint, p_reason text) returns void
language plpgsql volatile
as $$
declare
  v_ended record;
begin
  -- Every shard: by user id.
  perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
  for v_ended in
    update auth.sessions s set ended_at = now(), end_reason = p_reason
     where s.user_id = p_user_id and s.ended_at is null
    returning s.id, s.tokens_expire_at
  loop
    perform auth.announce_session_end(v_ended.id, v_ended.tokens_expire_at);
  end loop;
end
$$;
  $def$;
  comment on function auth.start_session(auth.users) is
    'A new session of p_user (generation 0) on the user''s shard, clearing the user''s sessions whose tokens have long expired (Citus).';
  comment on function auth.live_session(uuid, text, text) is
    'The live session p_sid of user p_sub; null when p_sid is null; else raises p_errcode "session has ended" (Citus: on the shard of the request''s own token, else on every shard).';
  comment on function auth.end_session(uuid, text) is
    'End session p_sid (if live) for p_reason and announce it to the gateways (Citus: NOTIFY from the coordinator).';
  comment on function auth.end_user_sessions(bigint, text) is
    'End every live session of user p_user_id for p_reason, on every shard, and announce each to the gateways (Citus).';
end
$citus$;
