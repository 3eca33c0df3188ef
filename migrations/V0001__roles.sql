-- Roles: the login role the gateway connects as, and the roles requests run as.
-- Roles are cluster-wide and may already exist (created by a DBA, or by this
-- migration in another database of the same cluster), so each is created only
-- when missing. `authenticator` can log in but has no privileges of its own
-- (NOINHERIT): it only switches to the request's role.
do $$
begin
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'web_anon') then
    create role web_anon nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'app_user') then
    create role app_user nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'app_admin') then
    create role app_admin nologin;
  end if;
end
$$;

grant web_anon, app_user, app_admin to authenticator;

-- PostgreSQL 15 already denies CREATE on public to everyone; say it anyway so
-- an upgraded cluster gets the same least-privilege default.
revoke create on schema public from public;
