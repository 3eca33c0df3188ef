-- Lift the shipped per-address rate limits (sql/api/_limits.sql) of every
-- function of api for a load test from one machine, whose calls all come
-- from one address; the concurrency limits stay. A start of the embedded
-- cluster, or pgrpc migrate, restores them. Used by bench/faults.sql,
-- bench/soak.sql and tests/it/citus_bench.rs.
do $$
declare
  v_f regprocedure;
begin
  for v_f in select p.oid::regprocedure from pg_proc p
             where p.pronamespace = 'api'::regnamespace
               and exists (select from unnest(p.proconfig) c where c like 'pgrpc.rate_limit=%')
  loop
    execute format('alter function %s reset pgrpc.rate_limit', v_f);
  end loop;
end
$$;
