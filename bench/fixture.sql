-- Benchmark fixture, applied by bench/run as the superuser after every start of
-- the gateway (sql/ drops and recreates the exposed schema on each start, so the
-- function must be created again; the users persist and are created once).
-- Idempotent. Never part of sql/ or migrations/: it exists only in bench/.data.

-- The 256-connection pgbench reference needs more than the default 100
-- backends. Takes effect at the next start; bench/run restarts the gateway
-- (the "warm start" it measures) before any load.
alter system set max_connections = 300;

-- The cheapest possible call: what the gateway adds on top of it is what we measure.
create or replace function api.add_them(a int, b int) returns int
language sql immutable
as $$ select a + b $$;
comment on function api.add_them(int, int) is 'Benchmark fixture: a + b';
revoke all on function api.add_them(int, int) from public;
grant execute on function api.add_them(int, int) to web_anon, app_user;

-- identify at bcrypt cost 8 (new hashes; the users below are hashed at 8 directly).
update auth.settings set bcrypt_cost = 8;

-- 1,000 users bench0001 … bench1000, password 'bench-password-NNNN', each hashed
-- with its own salt as register would (extensions.crypt + gen_salt('bf', cost)).
-- About 12 ms per hash on this machine: ~12 s, only on a fresh data directory.
insert into auth.users (username, email, password_hash, role)
select format('bench%s', lpad(g::text, 4, '0')),
       format('bench%s@example.com', lpad(g::text, 4, '0')),
       extensions.crypt(format('bench-password-%s', lpad(g::text, 4, '0')),
                        extensions.gen_salt('bf', 8)),
       'app_user'
from generate_series(1, 1000) g
where not exists (select from auth.users u where u.username like 'bench%');

-- Issue 11's one-username flood: a real account hashed at cost 10, whose
-- password the flood never knows.
insert into auth.users (username, email, password_hash, role)
select 'floodvictim', 'floodvictim@example.com',
       extensions.crypt('victim-password-0001', extensions.gen_salt('bf', 10)), 'app_user'
where not exists (select from auth.users u where u.username = 'floodvictim');

analyze auth.users;

-- 1,000 ended sessions (once), so that the gateway's set of ended sessions is
-- not empty and the token case pays for a real lookup of its sid (README, JWT,
-- "Ended sessions"). Ended by UPDATE, as the seed does: that is what notifies.
insert into auth.sessions (tokens_expire_at)
select now() + interval '1 day' from generate_series(1, 1000)
where not exists (select from auth.sessions s where s.end_reason = 'bench');
update auth.sessions set ended_at = now(), end_reason = 'bench'
 where user_id is null and ended_at is null;
