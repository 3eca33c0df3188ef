-- Takes back the CREATE on api and pgrpc granted by auth/_begin.sql: the
-- functions keep their owner, and auth_owner cannot create anything in the
-- exposed schema or in pgrpc.
revoke create on schema api from auth_owner;
revoke create on schema pgrpc from auth_owner;
