-- Citus only (nothing without the citus extension): sessions started on the
-- user's shard by a delegated sign-in (citus/identify.sql), and what the
-- coordinator's session functions of auth/sessions.sql do with them.
--
-- A delegated function runs on a worker and may touch only its user's shard,
-- so it cannot insert into auth.sessions, which stays on the coordinator
-- (migration V0015): there its triggers announce every end to the gateways
-- (NOTIFY pgrpc) and keep an ended session ended. A delegated sign-in
-- writes its session into auth.session_starts instead (V0016, distributed by
-- username). The first time the coordinator ends or continues such a
-- session (logout, logout_all, refresh, identify with a token,
-- change_password, a DBA's auth.end_session / auth.end_user_sessions), the
-- row moves into auth.sessions in the same distributed transaction, and the
-- functions of auth/sessions.sql then work as without Citus: the NOTIFY of
-- an end comes from the coordinator's trigger, and pgrpc.ended_sessions()
-- reads auth.sessions, where every ended session is. A session that was only
-- checked (verify_token, me: read-only calls) is found in auth.session_starts.
-- The functions of auth/sessions.sql that need this are renamed *_local and
-- wrapped under their own names; their arguments, results and errors are
-- unchanged.
do $citus$
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;

  -- On the workers too (propagated): what a delegated sign-in calls. They
  -- name no type of auth.sessions, which exists on the coordinator alone.
  execute $def$
create function auth.start_session_on_shard(p_user auth.users, p_key extensions.citext)
returns auth.session_starts
language plpgsql volatile
as $$
declare
  v_start auth.session_starts;
begin
  -- p_key is the username exactly as the sign-in was given it (the shard key
  -- of the forced delegation; citext: the same user whatever the case).
  insert into auth.session_starts as s (username, id, user_id, created_at, tokens_expire_at)
  values (p_key, gen_random_uuid(), p_user.id, now(), now())
  returning * into v_start;
  -- This user's starts none of whose tokens can be valid any more (a day
  -- past the last exp) mean nothing: dropped here, on the user's shard only.
  delete from auth.session_starts s
   where s.username operator(extensions.=) p_key
     and s.tokens_expire_at < now() - interval '1 day';
  return v_start;
end
$$;
  $def$;
  comment on function auth.start_session_on_shard(auth.users, extensions.citext) is
    'Citus: a new session of p_user in auth.session_starts on the user''s shard (p_key: the username as given), clearing the user''s starts whose tokens have long expired.';
  alter function auth.start_session_on_shard(auth.users, extensions.citext) owner to auth_owner;
  revoke all on function auth.start_session_on_shard(auth.users, extensions.citext) from public;

  execute $def$
create function auth.issue_start_claims(p_user auth.users, p_lifetime interval,
                                        p_start auth.session_starts, p_key extensions.citext)
returns auth.jwt_claims
language plpgsql volatile
as $$
declare
  v_now bigint := floor(extract(epoch from now()))::bigint;
  v_orig_iat bigint := floor(extract(epoch from p_start.created_at))::bigint;
  v_exp bigint;
begin
  -- As auth.issue_claims (auth/tokens.sql), for a session in
  -- auth.session_starts: keep the two in step.
  v_exp := least(v_now + extract(epoch from p_lifetime)::bigint,
                 v_orig_iat + (select extract(epoch from s.refresh_limit)::bigint from auth.current_settings() s));
  update auth.session_starts s set tokens_expire_at = greatest(s.tokens_expire_at, to_timestamp(v_exp))
   where s.username operator(extensions.=) p_key and s.id = p_start.id;
  return row(p_user.role, p_user.id::text, p_user.username, v_now, v_exp, v_orig_iat,
             gen_random_uuid(), p_start.id, 0)::auth.jwt_claims;
end
$$;
  $def$;
  comment on function auth.issue_start_claims(auth.users, interval, auth.session_starts, extensions.citext) is
    'Citus: auth.issue_claims for a session of auth.session_starts (generation 0) on the user''s shard.';
  alter function auth.issue_start_claims(auth.users, interval, auth.session_starts, extensions.citext) owner to auth_owner;
  revoke all on function auth.issue_start_claims(auth.users, interval, auth.session_starts, extensions.citext) from public;

  -- The coordinator alone: these use auth.sessions.
  set local citus.enable_ddl_propagation = off;

  execute $def$
create function auth.session_start(p_sid uuid) returns auth.session_starts
language plpgsql stable
as $$
declare
  v_claims json := auth.request_claims();
  v_start auth.session_starts;
begin
  -- The request's own token names its user: one shard. Another session (a
  -- token sent as a parameter, a DBA's call) is looked for on every shard,
  -- one connection per worker (a parallel read would keep the transaction
  -- from writing a reference table afterwards, as create_invite does).
  if v_claims ->> 'sid' = p_sid::text and v_claims ->> 'username' is not null then
    select * into v_start from auth.session_starts s
     where s.username operator(extensions.=) (v_claims ->> 'username')::extensions.citext
       and s.id = p_sid;
  else
    perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
    select * into v_start from auth.session_starts s where s.id = p_sid;
  end if;
  return v_start;
end
$$;
  $def$;
  comment on function auth.session_start(uuid) is
    'Citus: the row of auth.session_starts for session p_sid (a delegated sign-in''s, not yet used on the coordinator), or nulls.';
  alter function auth.session_start(uuid) owner to auth_owner;
  revoke all on function auth.session_start(uuid) from public;

  execute $def$
create function auth.adopt_session(p_sid uuid) returns void
language plpgsql volatile
as $$
declare
  v_start auth.session_starts;
begin
  if p_sid is null or exists (select from auth.sessions s where s.id = p_sid) then
    return;
  end if;
  -- Once per session: afterwards it is in auth.sessions.
  v_start := auth.session_start(p_sid);
  if v_start.id is null then
    return;
  end if;
  -- Two adoptions at once: the second waits on the id and inserts nothing.
  insert into auth.sessions (id, user_id, created_at, tokens_expire_at)
  values (v_start.id, v_start.user_id, v_start.created_at, v_start.tokens_expire_at)
  on conflict (id) do nothing;
  delete from auth.session_starts s
   where s.username operator(extensions.=) v_start.username and s.id = p_sid;
end
$$;
  $def$;
  comment on function auth.adopt_session(uuid) is
    'Citus: move session p_sid from auth.session_starts (a delegated sign-in''s) into auth.sessions, if it is there.';
  alter function auth.adopt_session(uuid) owner to auth_owner;
  revoke all on function auth.adopt_session(uuid) from public;

  execute $def$
create function auth.adopt_user_sessions(p_user_id bigint) returns void
language plpgsql volatile
as $$
declare
  v_sid uuid;
begin
  -- Every shard (by user id), one connection per worker.
  perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
  for v_sid in select s.id from auth.session_starts s where s.user_id = p_user_id loop
    perform auth.adopt_session(v_sid);
  end loop;
end
$$;
  $def$;
  comment on function auth.adopt_user_sessions(bigint) is
    'Citus: move every session of user p_user_id from auth.session_starts into auth.sessions.';
  alter function auth.adopt_user_sessions(bigint) owner to auth_owner;
  revoke all on function auth.adopt_user_sessions(bigint) from public;

  -- The wrappers: the functions of auth/sessions.sql keep their bodies under
  -- *_local; callers reach them through the names they always used.
  alter function auth.live_session(uuid, text, text) rename to live_session_local;
  execute $def$
create function auth.live_session(p_sid uuid, p_sub text, p_errcode text) returns auth.sessions
language plpgsql stable
as $$
declare
  v_start auth.session_starts;
  v_session auth.sessions;
begin
  -- Read-only (verify_token and me may run in a READ ONLY transaction): a
  -- live start is answered as the session it will become.
  if p_sid is not null and not exists (select from auth.sessions s where s.id = p_sid) then
    v_start := auth.session_start(p_sid);
    if v_start.id is not null and v_start.user_id::text = p_sub then
      v_session.id := v_start.id;
      v_session.user_id := v_start.user_id;
      v_session.created_at := v_start.created_at;
      v_session.generation := 0;
      v_session.tokens_expire_at := v_start.tokens_expire_at;
      return v_session;
    end if;
  end if;
  return auth.live_session_local(p_sid, p_sub, p_errcode);
end
$$;
  $def$;

  alter function auth.continue_session(auth.jwt_claims, text) rename to continue_session_local;
  execute $def$
create function auth.continue_session(p_token auth.jwt_claims, p_errcode text) returns auth.sessions
language plpgsql volatile
as $$
begin
  perform auth.adopt_session(p_token.sid);
  return auth.continue_session_local(p_token, p_errcode);
end
$$;
  $def$;

  alter function auth.end_session(uuid, text) rename to end_session_local;
  execute $def$
create function auth.end_session(p_sid uuid, p_reason text) returns void
language plpgsql volatile
as $$
begin
  perform auth.adopt_session(p_sid);
  perform auth.end_session_local(p_sid, p_reason);
end
$$;
  $def$;

  alter function auth.end_user_sessions(bigint, text) rename to end_user_sessions_local;
  execute $def$
create function auth.end_user_sessions(p_user_id bigint, p_reason text) returns void
language plpgsql volatile
as $$
begin
  perform auth.adopt_user_sessions(p_user_id);
  perform auth.end_user_sessions_local(p_user_id, p_reason);
end
$$;
  $def$;

  comment on function auth.live_session(uuid, text, text) is
    'The live session p_sid of user p_sub (in auth.sessions, or a delegated sign-in''s in auth.session_starts); null when p_sid is null; else raises p_errcode "session has ended".';
  comment on function auth.continue_session(auth.jwt_claims, text) is
    'auth.continue_session_local after moving the session into auth.sessions (Citus).';
  comment on function auth.end_session(uuid, text) is
    'End session p_sid (if live) for p_reason; the trigger on auth.sessions announces it (Citus: moved there first).';
  comment on function auth.end_user_sessions(bigint, text) is
    'End every live session of user p_user_id for p_reason (Citus: those of auth.session_starts too).';
  alter function auth.live_session(uuid, text, text) owner to auth_owner;
  alter function auth.continue_session(auth.jwt_claims, text) owner to auth_owner;
  alter function auth.end_session(uuid, text) owner to auth_owner;
  alter function auth.end_user_sessions(bigint, text) owner to auth_owner;
  revoke all on function auth.live_session(uuid, text, text) from public;
  revoke all on function auth.continue_session(auth.jwt_claims, text) from public;
  revoke all on function auth.end_session(uuid, text) from public;
  revoke all on function auth.end_user_sessions(bigint, text) from public;

  set local citus.enable_ddl_propagation = on;
end
$citus$;
