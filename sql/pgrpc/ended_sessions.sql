-- The ended sessions whose tokens may still be valid, for the gateway to
-- refuse on every call (README, "Sessions": the contract).
create function pgrpc.ended_sessions(p_leeway_seconds int default 0)
returns table (sid uuid, exp bigint)
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- exp: the Unix time after which no token of the session is valid anyway
  -- (the latest exp issued in it). A gateway that accepts tokens up to
  -- p_leeway_seconds past exp asks with that leeway. PL/pgSQL, not SQL:
  -- Citus cannot plan a parameter of an SQL function in a query of the
  -- distributed auth.sessions (V0017), and reads every shard here.
  return query
  select s.id, floor(extract(epoch from s.tokens_expire_at))::bigint
    from auth.sessions s
   where s.ended_at is not null
     and s.tokens_expire_at + make_interval(secs => greatest(p_leeway_seconds, 0)) > now();
end
$$;
comment on function pgrpc.ended_sessions(int) is
  'Ended sessions (sid) with the Unix time (exp) until which a token of theirs could pass exp + p_leeway_seconds; the gateway loads these at start and after a listener reconnect.';
alter function pgrpc.ended_sessions(int) owner to auth_owner;
revoke all on function pgrpc.ended_sessions(int) from public;
grant execute on function pgrpc.ended_sessions(int) to authenticator;
