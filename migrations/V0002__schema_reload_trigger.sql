-- Reload the gateway's schema cache after any DDL: an event trigger sends
-- NOTIFY pgrpc, 'reload schema' (PostgREST's documented recipe). Event triggers
-- need a superuser; without one the DBA reloads with that NOTIFY by hand.
create schema if not exists pgrpc;
comment on schema pgrpc is 'pgrpc internals; never exposed over HTTP';
revoke all on schema pgrpc from public;

create or replace function pgrpc.notify_ddl() returns event_trigger
language plpgsql
as $$
begin
  notify pgrpc, 'reload schema';
end
$$;
comment on function pgrpc.notify_ddl() is 'Tells running gateways to reload their schema cache after DDL.';

do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    create event trigger pgrpc_ddl_end on ddl_command_end execute function pgrpc.notify_ddl();
    create event trigger pgrpc_sql_drop on sql_drop execute function pgrpc.notify_ddl();
  else
    raise notice 'pgrpc: not a superuser, so no event trigger: after DDL run NOTIFY pgrpc, ''reload schema''';
  end if;
end
$$;
