-- Sessions (issue 15): every token names its session (sid) and refresh generation (gen); a session can be ended, and refresh tokens rotate.

alter type auth.jwt_claims add attribute sid uuid, add attribute gen int;
comment on type auth.jwt_claims is
  'JWT claims; the gateway replaces values of this type in results by signed tokens. sid: the session (auth.sessions.id); gen: its refresh generation when the token was issued';

-- One row per sign-in (register, identify, access_token, change_password).
-- Ending a session is final and is announced to the gateways by a trigger of
-- sql/ (NOTIFY pgrpc, 'session ended <sid> <exp>'); a row is deleted only once
-- no token of it can still be valid.
create table auth.sessions (
  id uuid primary key default gen_random_uuid(),
  user_id bigint references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  generation int not null default 0 check (generation >= 0),
  rotated_at timestamptz,
  tokens_expire_at timestamptz not null,
  ended_at timestamptz,
  end_reason text,
  check ((ended_at is null) = (end_reason is null))
);
comment on table auth.sessions is
  'Sign-in sessions; end one with UPDATE ... SET ended_at = now(), end_reason = ''...''; its tokens are refused from then on';
comment on column auth.sessions.user_id is 'The user; null once the user is deleted (the session was ended first)';
comment on column auth.sessions.created_at is 'Start of the session: orig_iat of its tokens; refresh_limit counts from here';
comment on column auth.sessions.generation is 'Refresh generation: refresh_token and identify accept a token of this generation and advance it';
comment on column auth.sessions.rotated_at is 'When generation last advanced; the previous generation is still accepted for refresh_reuse_grace after this';
comment on column auth.sessions.tokens_expire_at is 'The latest exp of any token issued in this session: after it (plus the gateway''s leeway) no token of it is valid';
comment on column auth.sessions.ended_at is 'When the session ended (null: live)';
comment on column auth.sessions.end_reason is 'logout, logout_all, password_changed, user_disabled, role_changed, user_deleted, token_reused, or a DBA''s own word';
create index sessions_user_id_idx on auth.sessions (user_id) where ended_at is null;
create index sessions_tokens_expire_at_idx on auth.sessions (tokens_expire_at);
alter table auth.sessions owner to auth_owner;

alter table auth.settings
  add column refresh_reuse_grace interval not null default '10 seconds' check (refresh_reuse_grace >= '0');
comment on column auth.settings.refresh_reuse_grace is
  'How long after a refresh the previous token may refresh again (two tabs at once) before reuse ends the session';

-- The gateway loads the ended sessions at start (pgrpc.ended_sessions(), in
-- sql/) as authenticator, before any role switch.
grant usage on schema pgrpc to authenticator;
