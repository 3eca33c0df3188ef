-- Admission limits of the functions that hash a password (issue 11), read by
-- the gateway from pg_proc.proconfig (README "Limits"). bcrypt at cost 10
-- keeps a core busy for tens of milliseconds per call, and each call holds a
-- pooled connection meanwhile: unlimited, a flood of logins takes the whole
-- pool and every core, and the cheapest call waits behind it. One at a time
-- per function keeps at least 7 of the default 10 connections, and on a
-- 2-core machine a core, for everything else even when all three are flooded
-- at once. Waiting calls hold no connection; past the queue or the wait, 503
-- PGRST060 with Retry-After. identify and access_token queue 8 (the default
-- for one slot: a waiter is answered within ~8 hashes); register queues 32
-- and waits up to 10 s, so a burst of sign-ups with one invite still reaches
-- the database rather than a 503.
-- change_password hashes twice (the old password's check, the new one's hash)
-- and gets the same limit. refresh_token, verify_token, logout and logout_all
-- check a signature, not a password: no limit.
-- More cores: raise max_concurrency to about half the database's cores, with
-- the same statements in a file of your own (a schema reload applies them).
-- This file is re-applied on every start.
alter function api.identify(text, text) set pgrpc.max_concurrency = '1';
alter function api.identify(text, text) set pgrpc.max_queue = '8';
alter function api.access_token(text, text) set pgrpc.max_concurrency = '1';
alter function api.access_token(text, text) set pgrpc.max_queue = '8';
alter function api.register(text, text, text, text) set pgrpc.max_concurrency = '1';
alter function api.register(text, text, text, text) set pgrpc.max_queue = '32';
alter function api.register(text, text, text, text) set pgrpc.max_wait = '10';
alter function api.change_password(text, text) set pgrpc.max_concurrency = '1';
alter function api.change_password(text, text) set pgrpc.max_queue = '8';
