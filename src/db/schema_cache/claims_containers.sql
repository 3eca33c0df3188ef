-- Every type that contains the claims type ($1): arrays of it, domains over
-- it, composite types with an attribute of it, and so on recursively. A value
-- of such a type could smuggle unverified claims into a function, so the
-- planner only accepts arrays of the claims type itself (each element a token)
-- and refuses the rest. Columns: the type's oid, and for an array its element.
with recursive containing(oid) as (
  select $1::oid
  union
  select t.oid
  from pg_type t, containing c
  where (t.typcategory = 'A' and t.typelem = c.oid)
     or (t.typtype = 'd' and t.typbasetype = c.oid)
     or (t.typtype = 'c' and exists (
           select from pg_attribute a
           where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped and a.atttypid = c.oid))
)
select c.oid::int8, case when t.typcategory = 'A' then t.typelem::int8 end
from containing c
join pg_type t on t.oid = c.oid
where c.oid <> $1::oid
