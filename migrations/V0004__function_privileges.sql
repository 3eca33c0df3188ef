-- Functions are not executable by PUBLIC unless granted: PostgreSQL's default
-- gives every new function EXECUTE to PUBLIC, and a per-schema ALTER DEFAULT
-- PRIVILEGES can only add to that default, never take it away, so this is
-- database-wide for the role that migrates (and creates functions in psql).
alter default privileges revoke execute on functions from public;
