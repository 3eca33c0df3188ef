-- Lets auth_owner own the SECURITY DEFINER functions of api while sql/ loads:
-- ALTER FUNCTION ... OWNER TO needs the new owner to have CREATE on the schema
-- (a superuser is exempt; a non-superuser migrating role is not). The grant is
-- revoked again by auth/_end.sql in the same transaction, so it is never
-- visible outside the load.
grant create on schema api to auth_owner;
