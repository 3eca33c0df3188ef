-- The configured claims type ($1 schema, $2 name): its oid, its kind
-- ('c' composite, 'd' domain) and, for a domain, its base type.
select t.oid::int8, t.typtype::text, t.typbasetype::int8
from pg_type t
join pg_namespace n on n.oid = t.typnamespace
where n.nspname = $1 and t.typname = $2
