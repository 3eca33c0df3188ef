-- Auth state for the seed APIs: owner role, pgcrypto, the claims type, settings, users, invites, login failures, RLS.

-- auth_owner owns every auth table and the SECURITY DEFINER functions of
-- sql/ (so they run with its rights, not a superuser's). NOLOGIN: it is only
-- ever reached through those functions. The migrating role becomes a member so
-- that a non-superuser owner can still create and replace what auth_owner owns.
do $$
begin
  if not exists (select from pg_roles where rolname = 'auth_owner') then
    create role auth_owner nologin;
  end if;
end
$$;
grant auth_owner to current_user;

-- pgcrypto (bcrypt: crypt() and gen_salt('bf')) in a schema of its own, so
-- definer functions call it schema-qualified and never search `public`.
create schema if not exists extensions;
comment on schema extensions is 'Extensions, kept out of public and out of the exposed schema';
revoke create on schema extensions from public;
grant usage on schema extensions to auth_owner;
do $$
declare
  v_schema name;
begin
  select n.nspname into v_schema
  from pg_extension e join pg_namespace n on n.oid = e.extnamespace
  where e.extname = 'pgcrypto';
  if v_schema is null then
    create extension pgcrypto with schema extensions;
  elsif v_schema <> 'extensions' then
    raise exception 'pgcrypto is installed in schema %, the auth functions call extensions.crypt()', v_schema
      using hint = 'ALTER EXTENSION pgcrypto SET SCHEMA extensions (and schema-qualify its other callers)';
  end if;
end
$$;

-- The private schema: never listed in db.schemas, so nothing here is reachable
-- over HTTP. The request roles get USAGE only because the claims type lives
-- here and the gateway names it (auth.jwt_claims) in the statements it runs as
-- them; every function of auth has EXECUTE revoked from PUBLIC, and the tables
-- grant nothing but app_user's own profile columns below.
create schema auth authorization auth_owner;
comment on schema auth is 'Users, invites, login failures and auth helpers; private (never exposed over HTTP)';
grant usage on schema auth to web_anon, app_user, app_admin;

-- What the gateway signs: a function result holding a value of this type is
-- answered with a JWT of these claims (jwt.claims_type). sub is the user id as
-- text (RFC 7519 §4.1.2 makes sub a string).
create type auth.jwt_claims as (
  role text,
  sub text,
  username text,
  iat bigint,
  exp bigint,
  orig_iat bigint,
  jti uuid
);
comment on type auth.jwt_claims is 'JWT claims; the gateway replaces values of this type in results by signed tokens';
alter type auth.jwt_claims owner to auth_owner;

-- Result types: {"token": …} needs a named composite (a function with a single
-- OUT parameter returns the bare value, not an object), and refresh/verify take
-- a parameter called token, which an OUT parameter cannot also be called.
create type auth.token_result as (token auth.jwt_claims);
comment on type auth.token_result is 'Result of register and identify: {"token": "<jwt>"}';
alter type auth.token_result owner to auth_owner;
create type auth.session_result as (token auth.jwt_claims, expires_in text, "user" json);
comment on type auth.session_result is 'Result of refresh_token and verify_token: {"token", "expires_in", "user": {"username", "id"}}';
alter type auth.session_result owner to auth_owner;

-- Every rule a DBA may want to change, in one row:
--   update auth.settings set bcrypt_cost = 12, lockout_duration = '30 minutes';
create table auth.settings (
  id boolean primary key default true check (id),
  token_lifetime interval not null default '24 hours' check (token_lifetime > '0'),
  access_token_lifetime interval not null default '5 days' check (access_token_lifetime > '0'),
  refresh_limit interval not null default '10 days' check (refresh_limit > '0'),
  bcrypt_cost int not null default 10 check (bcrypt_cost between 4 and 31),
  max_failed_logins int not null default 5 check (max_failed_logins > 0),
  lockout_duration interval not null default '15 minutes' check (lockout_duration > '0'),
  invite_max_uses int not null default 1 check (invite_max_uses > 0),
  invite_valid_for interval not null default '7 days' check (invite_valid_for > '0')
);
comment on table auth.settings is 'Auth rules, one row (id = true); change with UPDATE, effective at once';
comment on column auth.settings.id is 'Always true: keeps the table at one row';
comment on column auth.settings.token_lifetime is 'Lifetime of tokens from register and identify';
comment on column auth.settings.access_token_lifetime is 'Lifetime of tokens from access_token and refresh_token';
comment on column auth.settings.refresh_limit is 'A session (orig_iat) can be extended or refreshed up to this long after the first login, never past it';
comment on column auth.settings.bcrypt_cost is 'bcrypt cost of new password hashes (gen_salt(''bf'', cost)); 4..31';
comment on column auth.settings.max_failed_logins is 'Consecutive failed logins of one username that lock it';
comment on column auth.settings.lockout_duration is 'How long a username stays locked; also the gap after which failures stop counting as consecutive';
comment on column auth.settings.invite_max_uses is 'Default max_uses of create_invite';
comment on column auth.settings.invite_valid_for is 'Default valid_for of create_invite';
insert into auth.settings default values;
alter table auth.settings owner to auth_owner;

create table auth.invites (
  code uuid primary key default gen_random_uuid(),
  max_uses int not null default 1 check (max_uses > 0),
  uses int not null default 0 check (uses between 0 and max_uses),
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  created_by text
);
comment on table auth.invites is 'Invite codes for register: usable max_uses times until expires_at';
comment on column auth.invites.uses is 'Registrations that consumed the code (incremented in the registering transaction)';
comment on column auth.invites.created_by is 'sub claim of the token that created it; null for the first-start invite or a token without sub';
alter table auth.invites owner to auth_owner;

create table auth.users (
  id bigint generated always as identity primary key,
  username text not null check (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
  email text not null check (email = lower(btrim(email)) and email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  password_hash text not null,
  role text not null default 'app_user' check (role in ('app_user', 'app_admin')),
  disabled_at timestamptz,
  created_at timestamptz not null default now(),
  invite_code uuid references auth.invites (code) on delete set null
);
comment on table auth.users is 'Accounts; delete a row or set disabled_at to stop a user logging in, extending, refreshing and verifying';
comment on column auth.users.username is 'As registered; unique case-insensitively';
comment on column auth.users.email is 'Trimmed and lower-cased; unique';
comment on column auth.users.password_hash is 'bcrypt hash (pgcrypto crypt); never granted to a request role';
comment on column auth.users.role is 'Database role of the user''s tokens';
comment on column auth.users.disabled_at is 'Set to disable the account';
create unique index users_username_key on auth.users (lower(username));
create unique index users_email_key on auth.users (email);
alter table auth.users owner to auth_owner;

-- Row-level security: a request role sees only the row whose id is its token's
-- sub, and only the columns granted here (never password_hash). The definer
-- functions run as the table owner, which RLS does not restrict.
alter table auth.users enable row level security;
create policy users_self on auth.users for select to app_user, app_admin
  using (id::text = nullif(current_setting('request.jwt.claims', true), '')::json ->> 'sub');
grant select (id, username, email, role, created_at) on auth.users to app_user, app_admin;

-- Consecutive failed logins per lower-cased username (known or not, so that a
-- lock says nothing about whether the account exists). A success deletes the row.
create table auth.login_failures (
  username text primary key,
  failures int not null check (failures > 0),
  last_failed_at timestamptz not null,
  locked_until timestamptz
);
create index login_failures_last_failed_at_idx on auth.login_failures (last_failed_at);
comment on table auth.login_failures is 'Consecutive failed logins per lower(username); locked_until set once max_failed_logins is reached';
alter table auth.login_failures owner to auth_owner;
