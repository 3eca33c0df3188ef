-- Opens the auth part of the sql/ load (closed by auth/_end.sql).

-- Lets auth_owner own the SECURITY DEFINER functions of api while sql/ loads:
-- ALTER FUNCTION ... OWNER TO needs the new owner to have CREATE on the schema
-- (a superuser is exempt; a non-superuser migrating role is not). The grant is
-- revoked again by auth/_end.sql in the same transaction, so it is never
-- visible outside the load.
grant create on schema api to auth_owner;
grant create on schema pgrpc to auth_owner;

-- The functions of auth and pgrpc are code, like the exposed schema: drop
-- every one of them (and the triggers that call them, which sql/ creates
-- again) so that a helper renamed or removed from sql/ does not live on in
-- every database that ever loaded it. The schemas themselves hold state
-- (tables, types) and stay, and so does pgrpc.notify_ddl(): it belongs to
-- migration V0002, and its event triggers depend on it.
-- No CASCADE: the only objects allowed to depend on an auth function are the
-- triggers dropped here; anything else (a view, a column default, a policy a
-- DBA added) makes the load fail with PostgreSQL's "other objects depend on
-- it", and the whole load rolls back, rather than silently losing that object.
do $$
declare
  v_trigger record;
  v_routine regprocedure;
begin
  for v_trigger in
    select t.tgname, t.tgrelid::regclass as rel
      from pg_trigger t
      join pg_proc p on p.oid = t.tgfoid
     where p.pronamespace in ('auth'::regnamespace, 'pgrpc'::regnamespace)
       and not t.tgisinternal
  loop
    execute format('drop trigger %I on %s', v_trigger.tgname, v_trigger.rel);
  end loop;
  for v_routine in
    select p.oid::regprocedure
      from pg_proc p
     where p.pronamespace in ('auth'::regnamespace, 'pgrpc'::regnamespace)
       and p.prorettype <> 'event_trigger'::regtype
       -- An extension's member cannot be dropped on its own (none lives
       -- here today; pgcrypto is in schema extensions).
       and not exists (
         select from pg_depend d
          where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  loop
    execute format('drop routine %s', v_routine);
  end loop;
end
$$;
