-- Functions Citus delegates to the worker holding their distribution
-- argument's shard even inside a transaction block, which every pgrpc call
-- is: distributed with a distribution argument and force_delegation
-- (create_distributed_function(…, distribution_arg_name, colocate_with,
-- force_delegation := true)). Run only when citus.sql says Citus is there.
select d.objid::int8
from pg_catalog.pg_dist_object d
where d.classid = 'pg_catalog.pg_proc'::regclass
  and d.distribution_argument_index is not null
  and d.force_delegation
