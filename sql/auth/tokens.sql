-- Building claims (the gateway signs them) and checking the user behind a token.

create function auth.iso_utc(p_epoch bigint) returns text
language sql stable
as $$
  -- "2015-04-29T13:29:25.000Z", the seed's expires_in format. STABLE, not
  -- IMMUTABLE: to_char is STABLE (some of its patterns read the locale), even
  -- though these fixed fields of a timestamp without time zone read none.
  select to_char(timestamp 'epoch' + p_epoch * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
comment on function auth.iso_utc(bigint) is 'Unix seconds as an ISO 8601 UTC timestamp with milliseconds and Z.';
alter function auth.iso_utc(bigint) owner to auth_owner;
revoke all on function auth.iso_utc(bigint) from public;

create function auth.issue_claims(p_user auth.users, p_lifetime interval, p_session auth.sessions)
returns auth.jwt_claims
language plpgsql volatile
as $$
declare
  v_now bigint := floor(extract(epoch from now()))::bigint;
  -- The session's start is orig_iat; no token outlives orig_iat + refresh_limit.
  v_orig_iat bigint := floor(extract(epoch from p_session.created_at))::bigint;
  v_exp bigint;
begin
  -- Epoch arithmetic: '10 days' is always 864000 s here, whatever the
  -- session's time zone and its daylight-saving changes.
  v_exp := least(v_now + extract(epoch from p_lifetime)::bigint,
                 v_orig_iat + (select extract(epoch from s.refresh_limit)::bigint from auth.current_settings() s));
  -- How long an ended session must be remembered (pgrpc.ended_sessions).
  update auth.sessions s set tokens_expire_at = greatest(s.tokens_expire_at, to_timestamp(v_exp))
   where s.id = p_session.id;
  -- jti is fresh each time; sid and gen say which session and generation.
  return row(p_user.role, p_user.id::text, p_user.username, v_now, v_exp, v_orig_iat,
             gen_random_uuid(), p_session.id, p_session.generation)::auth.jwt_claims;
end
$$;
comment on function auth.issue_claims(auth.users, interval, auth.sessions) is
  'Claims for a token of p_user in session p_session (its current generation) lasting p_lifetime, never past the session''s start + refresh_limit.';
alter function auth.issue_claims(auth.users, interval, auth.sessions) owner to auth_owner;
revoke all on function auth.issue_claims(auth.users, interval, auth.sessions) from public;

create function auth.token_user(p_sub text, p_errcode text) returns auth.users
language plpgsql stable
as $$
declare
  v_user auth.users;
begin
  -- sub is the id as text; anything else names no user (and must not reach a
  -- bigint cast, which would answer a confusing 22P02).
  if p_sub ~ '^[0-9]{1,18}$' then
    select * into v_user from auth.users u where u.id = p_sub::bigint;
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
comment on function auth.token_user(text, text) is
  'The active user whose id is p_sub; else raises p_errcode (PT400/PT401) saying the user is gone or disabled.';
alter function auth.token_user(text, text) owner to auth_owner;
revoke all on function auth.token_user(text, text) from public;

create function auth.within_refresh_limit(p_orig_iat bigint) returns boolean
language sql stable
as $$
  select p_orig_iat is not null
     -- Epoch arithmetic, as in issue_claims: '10 days' is always 864000 s here,
     -- whatever the session's time zone and its daylight-saving changes.
     and extract(epoch from now())
         < p_orig_iat + (select extract(epoch from s.refresh_limit) from auth.current_settings() s)
$$;
comment on function auth.within_refresh_limit(bigint) is
  'Whether a session that started at p_orig_iat may still be extended or refreshed (auth.settings.refresh_limit).';
alter function auth.within_refresh_limit(bigint) owner to auth_owner;
revoke all on function auth.within_refresh_limit(bigint) from public;

create function auth.user_json(p_user auth.users) returns json
language sql stable
as $$
  -- STABLE like json_build_object, which calls the output functions of its
  -- arguments' types.
  select json_build_object('username', p_user.username, 'id', p_user.id)
$$;
comment on function auth.user_json(auth.users) is 'The "user" object of refresh_token and verify_token: {"username", "id"}.';
alter function auth.user_json(auth.users) owner to auth_owner;
revoke all on function auth.user_json(auth.users) from public;
