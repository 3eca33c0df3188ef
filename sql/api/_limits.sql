-- Admission limits of the functions that hash a password (issue 11), read by
-- the gateway from pg_proc.proconfig (README "Limits"). bcrypt at cost 10
-- keeps a core busy for tens of milliseconds per call, and each call holds a
-- pooled connection meanwhile; an unlimited flood of logins takes the whole
-- pool and the cheapest call waits behind it. Two at a time per function
-- keeps at least 4 of the default 10 connections for everything else even
-- when all three are flooded at once (8 when one is), while waiting calls
-- (at most 32 per function, at most 5 s each, the default pgrpc.max_wait)
-- hold no connection at all; past that, 503 PGRST060 with Retry-After.
-- refresh_token and verify_token check a signature, not a password: no limit.
-- Tune per deployment with the same statements (a schema reload applies them);
-- this file is re-applied on every start.
alter function api.identify(text, text) set pgrpc.max_concurrency = '2';
alter function api.identify(text, text) set pgrpc.max_queue = '32';
alter function api.access_token(text, text) set pgrpc.max_concurrency = '2';
alter function api.access_token(text, text) set pgrpc.max_queue = '32';
alter function api.register(text, text, text, text) set pgrpc.max_concurrency = '2';
alter function api.register(text, text, text, text) set pgrpc.max_queue = '32';
