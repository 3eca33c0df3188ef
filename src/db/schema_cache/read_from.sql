-- Functions of the exposed schemas ($1) pinned to the primary for their reads
-- (`alter function … set pgrpc.read_from = 'primary'`): their OIDs. Read from
-- pg_proc.proconfig, where a function's SET clauses are kept as 'name=value'.
select p.oid::int8
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where n.nspname = any($1::text[])
  and p.prokind = 'f'
  and 'pgrpc.read_from=primary' = any(p.proconfig)
