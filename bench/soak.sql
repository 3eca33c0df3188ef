-- Soak fixture (bench/soak), applied as the superuser after the gateway's
-- start on bench/.soak-data. Never part of sql/ or migrations/.
-- :invites single-use invite codes, :users users soak0001 … with password
-- 'soak-password-NNNN'.

-- bcrypt at its cheapest: the soak looks for leaks and drift, not hash speed.
update auth.settings set bcrypt_cost = 4;

-- The load comes from one address: lift the sign-in rate limits.
\ir lift_rate_limits.sql

-- Invite n has code 00000000-0000-4000-8000-<n as 12 hex digits>.
insert into auth.invites (code, max_uses, expires_at, created_by)
select format('00000000-0000-4000-8000-%s', lpad(to_hex(g), 12, '0'))::uuid,
       1, now() + interval '1 day', 'bench/soak'
from generate_series(1, :invites) g;

insert into auth.users (username, email, password_hash, role)
select format('soak%s', lpad(g::text, 4, '0')),
       format('soak%s@example.com', lpad(g::text, 4, '0')),
       extensions.crypt(format('soak-password-%s', lpad(g::text, 4, '0')),
                        extensions.gen_salt('bf', 4)),
       'app_user'
from generate_series(1, :users) g;
analyze auth.users;

-- The cheap call.
create or replace function api.soak_add(a int, b int) returns int
language sql immutable
as $$ select a + b $$;
comment on function api.soak_add(int, int) is 'bench/soak: a + b';
revoke all on function api.soak_add(int, int) from public;
grant execute on function api.soak_add(int, int) to web_anon, app_user;
