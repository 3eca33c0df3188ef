-- The exposed schema holds only functions: it is recreated on every load, so a
-- function removed from sql/ disappears, and no table can be lost with it.
drop schema if exists api cascade;
create schema api;
comment on schema api is 'Functions exposed over HTTP by pgrpc as /rpc/<name>';
grant usage on schema api to web_anon, app_user, app_admin;
-- The gateway prepares its statements as authenticator, before the role
-- switch: it needs to look names up here (USAGE), never to execute (EXECUTE
-- is checked for the request's role).
grant usage on schema api to authenticator;
-- New functions are not executable by PUBLIC (migration V0004 sets that
-- default); each file grants what it means.
