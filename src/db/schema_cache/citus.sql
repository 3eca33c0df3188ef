-- Whether this database is a Citus database: the citus extension is
-- installed (Citus's own catalogs, such as pg_dist_object, exist only then).
select exists (select from pg_catalog.pg_extension where extname = 'citus')
