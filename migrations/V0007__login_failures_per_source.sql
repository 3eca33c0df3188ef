-- Failed logins count per (username, client address), with a per-account ceiling across addresses (issue 11): one address can no longer lock the owner out.

-- The address a failure came from: request.client_ip as the gateway sets it,
-- normalized by auth.client_source() (an IPv6 address counts as its /64).
-- Rows from before this migration, and attempts without an address, are the
-- one source 'unknown'.
alter table auth.login_failures add column source text not null default 'unknown';
alter table auth.login_failures drop constraint login_failures_pkey;
alter table auth.login_failures add primary key (username, source);
comment on table auth.login_failures is
  'Consecutive failed logins per lower(username) and client address; locked_until set once max_failed_logins is reached, for that address only';
comment on column auth.login_failures.source is
  'Client address (IPv4, or the /64 of an IPv6 address) from request.client_ip; ''unknown'' when the gateway gave none';

-- Failures of one account from all addresses, in fixed windows: the ceiling
-- that bounds guessing spread over many addresses. Only for accounts that
-- exist, so its size is bounded by auth.users, not by what clients send.
create table auth.user_login_failures (
  user_id bigint primary key references auth.users (id) on delete cascade,
  window_started_at timestamptz not null,
  failures int not null check (failures > 0)
);
comment on table auth.user_login_failures is
  'Failed logins of an account from every address since window_started_at; locked for everyone once max_failed_logins_per_user is reached, until the window ends';
alter table auth.user_login_failures owner to auth_owner;

alter table auth.settings
  add column max_failed_logins_per_user int not null default 100 check (max_failed_logins_per_user > 0),
  add column failure_window_per_user interval not null default '1 hour' check (failure_window_per_user > '0'),
  add column max_login_failure_rows int not null default 100000 check (max_login_failure_rows > 0);
comment on column auth.settings.max_failed_logins is
  'Consecutive failed logins of one username from one client address that lock the username for that address';
comment on column auth.settings.lockout_duration is
  'How long a username stays locked for the address that failed; also the gap after which failures stop counting as consecutive';
comment on column auth.settings.max_failed_logins_per_user is
  'Failed logins of one account from all addresses within failure_window_per_user that lock it for everyone until the window ends';
comment on column auth.settings.failure_window_per_user is
  'The window of max_failed_logins_per_user';
comment on column auth.settings.max_login_failure_rows is
  'Most rows auth.login_failures holds; a failure of a (username, address) not yet tracked is not recorded while it is full';
