-- Every function of the exposed schemas ($1), one JSON document per function,
-- with what the planner needs: arguments (name, type, mode), how many trailing
-- input arguments have defaults, volatility, and the return type's shape.
-- Arguments come from proallargtypes (all modes) or proargtypes (IN only);
-- format_type() yields the SQL spelling of a type, already quoted where needed.
-- 'config' is the function's own `pgrpc.*` settings (ALTER FUNCTION … SET
-- pgrpc.max_concurrency = '2'), as `name=value` texts: the gateway's limits
-- and `pgrpc.from_claims`. An argument is 'scalar' when a JSON string or number
-- can be its value (no array, composite or pseudo-type, not json/jsonb, and no
-- domain over those: a domain has its base type's category).
select json_build_object(
  'schema', n.nspname,
  'name', p.proname,
  'oid', p.oid::int8,
  'volatility', p.provolatile::text,
  'returns_set', p.proretset,
  'n_defaults', p.pronargdefaults,
  'variadic', p.provariadic <> 0,
  'description', d.description,
  'config', (select json_agg(c) from unnest(p.proconfig) as c where c like 'pgrpc.%'),
  'args', coalesce((
    select json_agg(json_build_object(
             'name', coalesce(p.proargnames[a.ord], ''),
             'type_oid', a.typ::int8,
             'type', format_type(a.typ, null),
             'mode', coalesce(p.proargmodes[a.ord]::text, 'i'),
             'pseudo', (select tt.typtype = 'p' from pg_type tt where tt.oid = a.typ),
             'scalar', (select tt.typcategory not in ('A', 'C', 'P', 'X')
                          and coalesce(nullif(tt.typbasetype, 0), tt.oid) not in (114, 3802)
                        from pg_type tt where tt.oid = a.typ))
           order by a.ord)
    from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as a(typ, ord)
  ), '[]'),
  'ret', json_build_object(
    'oid', t.oid::int8,
    'type', format_type(t.oid, null),
    'kind', t.typtype::text,
    'base_oid', case when t.typtype = 'd' then t.typbasetype::int8 end,
    'columns', case when t.typtype = 'c' then (
      select json_agg(json_build_object(
               'name', att.attname,
               'type_oid', att.atttypid::int8,
               'type', format_type(att.atttypid, att.atttypmod))
             order by att.attnum)
      from pg_attribute att
      where att.attrelid = t.typrelid and att.attnum > 0 and not att.attisdropped
    ) end
  )
)::text
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type t on t.oid = p.prorettype
left join pg_description d on d.objoid = p.oid and d.classoid = 'pg_proc'::regclass and d.objsubid = 0
where n.nspname = any($1::text[])
  and p.prokind = 'f'
order by n.nspname, p.proname, p.oid
