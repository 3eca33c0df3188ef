-- pgrpc.notify_ddl() states its volatility (VOLATILE: it sends a NOTIFY), as every function must; same body as V0002.
create or replace function pgrpc.notify_ddl() returns event_trigger
language plpgsql volatile
as $$
begin
  notify pgrpc, 'reload schema';
end
$$;
comment on function pgrpc.notify_ddl() is 'Tells running gateways to reload their schema cache after DDL.';
