-- Takes back the CREATE on api granted by auth/_begin.sql: the functions keep
-- their owner, and auth_owner cannot create anything in the exposed schema.
revoke create on schema api from auth_owner;
