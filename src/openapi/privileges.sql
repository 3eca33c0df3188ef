-- What the OpenAPI document of role $1 may show, in one row:
--   1. whether the role exists, and whether the connected role (authenticator)
--      may switch to it, as SET ROLE would check at call time;
--   2. the oids of the functions of the exposed schemas $2 that the role may
--      call: EXECUTE on the function and USAGE on its schema;
--   3. the types $3 (those of the cached functions' parameters and results) and
--      every type they are made of (array elements, domain bases, composite
--      attributes), one JSON object keyed by oid, to describe them as JSON.
-- The oid variants of has_*_privilege answer NULL rather than raise for an
-- object dropped since the schema cache was loaded.
with recursive
  target as (
    select r.oid, pg_has_role(session_user, r.oid, 'MEMBER') as may_switch
    from pg_roles r
    where r.rolname = $1::text
  ),
  executable as (
    select p.oid::int8 as oid
    from target t
    cross join pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = any($2::text[])
      and p.prokind = 'f'
      and has_schema_privilege(t.oid, n.oid, 'USAGE')
      and has_function_privilege(t.oid, p.oid, 'EXECUTE')
  ),
  used(oid) as (
    select u::oid from unnest($3::int8[]) as u
    union
    select parts.oid
    from used
    join pg_type ty on ty.oid = used.oid
    cross join lateral (
      select ty.typelem where ty.typcategory = 'A' and ty.typelem <> 0
      union all
      select ty.typbasetype where ty.typtype = 'd'
      union all
      select a.atttypid
      from pg_attribute a
      where ty.typtype = 'c' and a.attrelid = ty.typrelid and a.attnum > 0 and not a.attisdropped
    ) as parts(oid)
  )
select
  exists (select from target) as role_exists,
  coalesce((select t.may_switch from target t), false) as may_switch,
  coalesce((select array_agg(e.oid order by e.oid) from executable e), '{}') as executable,
  coalesce((
    select json_object_agg(ty.oid::int8, json_build_object(
      'schema', tn.nspname,
      'name', ty.typname,
      'sql', format_type(ty.oid, null),
      'kind', ty.typtype::text,
      'category', ty.typcategory::text,
      'element', case when ty.typcategory = 'A' and ty.typelem <> 0 then ty.typelem::int8 end,
      'base', case when ty.typtype = 'd' then ty.typbasetype::int8 end,
      'labels', case when ty.typtype = 'e' then (
        select json_agg(e.enumlabel order by e.enumsortorder)
        from pg_enum e where e.enumtypid = ty.oid) end,
      'attributes', case when ty.typtype = 'c' then (
        select json_agg(json_build_object('name', a.attname, 'type_oid', a.atttypid::int8)
                        order by a.attnum)
        from pg_attribute a
        where a.attrelid = ty.typrelid and a.attnum > 0 and not a.attisdropped) end,
      'description', obj_description(ty.oid, 'pg_type')))
    from used
    join pg_type ty on ty.oid = used.oid
    join pg_namespace tn on tn.oid = ty.typnamespace
  ), '{}')::text as types
