-- Fault-script fixture (bench/faults), applied as the superuser after the
-- gateway's start on bench/.faults-data. Never part of sql/ or migrations/.
-- :invites is the number of single-use invite codes to create.

-- Registrations hash with bcrypt: the cheapest cost keeps the load light on a
-- shared machine (the point is the count, not the speed).
update auth.settings set bcrypt_cost = 4;

-- The load comes from one address: lift the sign-in rate limits.
\ir lift_rate_limits.sql

-- Invite n has code 00000000-0000-4000-8000-<n as 12 hex digits>, so the
-- load generator knows every code without reading them back.
insert into auth.invites (code, max_uses, expires_at, created_by)
select format('00000000-0000-4000-8000-%s', lpad(to_hex(g), 12, '0'))::uuid,
       1, now() + interval '1 day', 'bench/faults'
from generate_series(1, :invites) g;

-- Holds a pooled connection for a while: the pool runs dry while enough of
-- these run at once.
create or replace function api.faults_hold(seconds float8) returns int
language sql volatile
as $$ select pg_sleep(seconds); select 1 $$;
comment on function api.faults_hold(float8) is 'bench/faults: sleep, holding a connection';
revoke all on function api.faults_hold(float8) from public;
grant execute on function api.faults_hold(float8) to web_anon;
