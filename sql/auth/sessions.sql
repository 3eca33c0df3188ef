-- Sessions (auth.sessions): starting, continuing with refresh-token rotation,
-- checking and ending them; the triggers that end a user's sessions and
-- announce every end to the gateways.
--
-- Rotation follows Supabase Auth's refresh tokens: each token carries its
-- session's generation (gen); refreshing a token of the current generation
-- advances it, so the old token is retired. A retired token presented again
-- is taken as stolen and ends the whole session, except for the previous
-- generation within refresh_reuse_grace of the rotation, so that two tabs
-- refreshing at once do not sign the user out.

create function auth.start_session(p_user auth.users) returns auth.sessions
language plpgsql volatile
as $$
declare
  v_session auth.sessions;
begin
  -- tokens_expire_at grows with each token issued (auth.issue_claims).
  insert into auth.sessions as s (user_id, tokens_expire_at)
  values (p_user.id, now())
  returning * into v_session;
  -- Rows none of whose tokens can be valid any more (a day past the last
  -- exp, far beyond any leeway) mean nothing to anyone: drop a few each time.
  -- SKIP LOCKED: never wait for a session being refreshed.
  delete from auth.sessions s
   where s.id in (
     select d.id from auth.sessions d
      where d.tokens_expire_at < now() - interval '1 day'
      limit 100
      for update skip locked);
  return v_session;
end
$$;
comment on function auth.start_session(auth.users) is
  'A new session of p_user (generation 0), clearing a few sessions whose tokens have all long expired.';
alter function auth.start_session(auth.users) owner to auth_owner;
revoke all on function auth.start_session(auth.users) from public;

create function auth.live_session(p_sid uuid, p_sub text, p_errcode text) returns auth.sessions
language plpgsql stable
as $$
declare
  v_session auth.sessions;
begin
  if p_sid is null then
    -- A token outside any session (`pgrpc token`, or one issued before
    -- sessions existed): nothing to check here.
    return null;
  end if;
  select * into v_session from auth.sessions s where s.id = p_sid;
  -- Gone (cleaned up long after its tokens expired), ended, or not this
  -- user's: one answer.
  if v_session.id is null or v_session.ended_at is not null
     or v_session.user_id is null or v_session.user_id::text <> p_sub then
    raise exception using errcode = p_errcode, message = 'session has ended',
      hint = 'Sign in again with username and password';
  end if;
  return v_session;
end
$$;
comment on function auth.live_session(uuid, text, text) is
  'The live session p_sid of user p_sub; null when p_sid is null (a token without a session); else raises p_errcode "session has ended".';
alter function auth.live_session(uuid, text, text) owner to auth_owner;
revoke all on function auth.live_session(uuid, text, text) from public;

create function auth.check_session() returns void
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_claims json := auth.request_claims();
begin
  -- The caller's own session only (from its verified token), so this tells
  -- nobody anything about another's.
  if v_claims ->> 'sid' is not null then
    if v_claims ->> 'sid' !~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' then
      raise sqlstate 'PT401' using message = 'session has ended',
        hint = 'Sign in again with username and password';
    end if;
    perform auth.live_session((v_claims ->> 'sid')::uuid, v_claims ->> 'sub', 'PT401');
  end if;
end
$$;
comment on function auth.check_session() is
  'Raises PT401 "session has ended" when the request''s token names a session that has ended; for SECURITY INVOKER functions such as api.me.';
alter function auth.check_session() owner to auth_owner;
revoke all on function auth.check_session() from public;
grant execute on function auth.check_session() to app_user, app_admin;

create function auth.end_session(p_sid uuid, p_reason text) returns void
language sql volatile
as $$
  -- The trigger sessions_announce_end announces it.
  update auth.sessions s set ended_at = now(), end_reason = p_reason
   where s.id = p_sid and s.ended_at is null
$$;
comment on function auth.end_session(uuid, text) is 'End session p_sid (if live) for p_reason.';
alter function auth.end_session(uuid, text) owner to auth_owner;
revoke all on function auth.end_session(uuid, text) from public;

create function auth.end_user_sessions(p_user_id bigint, p_reason text) returns void
language sql volatile
as $$
  update auth.sessions s set ended_at = now(), end_reason = p_reason
   where s.user_id = p_user_id and s.ended_at is null
$$;
comment on function auth.end_user_sessions(bigint, text) is 'End every live session of user p_user_id for p_reason.';
alter function auth.end_user_sessions(bigint, text) owner to auth_owner;
revoke all on function auth.end_user_sessions(bigint, text) from public;

create function auth.continue_session(p_token auth.jwt_claims, p_errcode text) returns auth.sessions
language plpgsql volatile
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_session auth.sessions;
  v_gen int := coalesce(p_token.gen, 0);
begin
  if p_token.sid is null then
    raise exception using errcode = p_errcode, message = 'token has no session',
      hint = 'Sign in again with username and password: only tokens of a session can be refreshed';
  end if;
  perform auth.live_session(p_token.sid, p_token.sub, p_errcode);
  -- The row lock orders concurrent refreshes of one session: the second sees
  -- the generation the first advanced.
  select * into v_session from auth.sessions s where s.id = p_token.sid for update;
  if v_session.ended_at is not null then
    -- Ended while we waited for the lock.
    raise exception using errcode = p_errcode, message = 'session has ended',
      hint = 'Sign in again with username and password';
  end if;

  if v_gen = v_session.generation then
    update auth.sessions s set generation = s.generation + 1, rotated_at = now()
     where s.id = v_session.id
    returning * into v_session;
    return v_session;
  end if;
  if v_gen = v_session.generation - 1
     and v_session.rotated_at + v_settings.refresh_reuse_grace > now() then
    -- The token refreshed a moment ago, again (another tab): a token of the
    -- current generation, as the first refresh got.
    return v_session;
  end if;

  -- A retired token: whoever holds it may have stolen it. End the session
  -- for everyone holding one of its tokens, and answer without raising so
  -- that the end is committed.
  perform auth.end_session(v_session.id, 'token_reused');
  perform auth.respond_error(substr(p_errcode, 3)::int, p_errcode, 'token has already been refreshed',
    'A refreshed token was presented again, which is what a stolen token looks like, so its session has been ended. Sign in again.');
  return null;
end
$$;
comment on function auth.continue_session(auth.jwt_claims, text) is
  'Rotate the session of p_token for a new token: its generation advances (or, within refresh_reuse_grace, the previous generation gets the current one). A retired token ends the session and answers p_errcode without raising (null). Raises p_errcode for no session or an ended one.';
alter function auth.continue_session(auth.jwt_claims, text) owner to auth_owner;
revoke all on function auth.continue_session(auth.jwt_claims, text) from public;

-- Triggers. They are code: auth/_begin.sql drops them with their functions,
-- and they are created again here on every load.

create function auth.sessions_announce_end() returns trigger
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- The contract with the gateways (README, "Sessions"): on channel pgrpc,
  -- 'session ended <sid> <exp>' where exp is the Unix time after which no
  -- token of the session is valid anyway. NOTIFY is sent at commit, so a
  -- rolled-back end is never announced.
  perform pg_notify('pgrpc', format('session ended %s %s',
    new.id, floor(extract(epoch from new.tokens_expire_at))::bigint));
  return null;
end
$$;
comment on function auth.sessions_announce_end() is
  'Trigger: NOTIFY pgrpc, ''session ended <sid> <exp>'' when a session ends.';
alter function auth.sessions_announce_end() owner to auth_owner;
revoke all on function auth.sessions_announce_end() from public;
create trigger sessions_announce_end after update of ended_at on auth.sessions
  for each row when (old.ended_at is null and new.ended_at is not null)
  execute function auth.sessions_announce_end();

create function auth.sessions_keep_ended() returns trigger
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- Gateways remember ended sessions until their tokens expire and reload
  -- the list from this table: a session that resumed, or a row deleted
  -- while its tokens live, would disagree with what they were told.
  if tg_op = 'DELETE' then
    if old.tokens_expire_at > now() then
      raise exception 'a session whose tokens may still be valid cannot be deleted'
        using hint = 'End it instead: update auth.sessions set ended_at = now(), end_reason = ''...'' where id = ...';
    end if;
    return old;
  end if;
  if old.ended_at is not null and new.ended_at is distinct from old.ended_at then
    raise exception 'a session that has ended cannot be resumed or re-ended'
      using hint = 'The user signs in again for a new session';
  end if;
  return new;
end
$$;
comment on function auth.sessions_keep_ended() is
  'Trigger: an ended session stays ended, and no session is deleted while its tokens may be valid.';
alter function auth.sessions_keep_ended() owner to auth_owner;
revoke all on function auth.sessions_keep_ended() from public;
create trigger sessions_keep_ended before update of ended_at or delete on auth.sessions
  for each row execute function auth.sessions_keep_ended();

create function auth.users_end_sessions() returns trigger
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'DELETE' then
    perform auth.end_user_sessions(old.id, 'user_deleted');
    return old;
  end if;
  -- Whatever changes what a token of this user may do or prove.
  if new.disabled_at is not null and old.disabled_at is null then
    perform auth.end_user_sessions(new.id, 'user_disabled');
  elsif new.role is distinct from old.role then
    perform auth.end_user_sessions(new.id, 'role_changed');
  elsif new.password_hash is distinct from old.password_hash then
    perform auth.end_user_sessions(new.id, 'password_changed');
  end if;
  return null;
end
$$;
comment on function auth.users_end_sessions() is
  'Trigger: a user disabled, given another role, given another password or deleted has all sessions ended.';
alter function auth.users_end_sessions() owner to auth_owner;
revoke all on function auth.users_end_sessions() from public;
create trigger users_end_sessions after update of disabled_at, role, password_hash on auth.users
  for each row execute function auth.users_end_sessions();
-- BEFORE DELETE: the sessions are ended while they still name the user
-- (the foreign key then sets user_id to null).
create trigger users_end_sessions_on_delete before delete on auth.users
  for each row execute function auth.users_end_sessions();
