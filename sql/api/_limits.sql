-- Admission limits of the functions that hash a password (issue 11), read by
-- the gateway from pg_proc.proconfig (README "Limits"). bcrypt at cost 10
-- keeps a core busy for tens of milliseconds per call, and each call holds a
-- pooled connection meanwhile: unlimited, a flood of logins takes the whole
-- pool and every core, and the cheapest call waits behind it. One at a time
-- per function keeps at least 6 of the default 10 connections for everything
-- else even when all four are flooded at once, and a flood of one takes at
-- most a core's worth of hashing. Waiting calls hold no connection; past the
-- queue or the wait, 503 PGRST060 with Retry-After. identify and access_token queue 8 (the default
-- for one slot: a waiter is answered within ~8 hashes); register queues 32
-- and waits up to 10 s, so a burst of sign-ups with one invite still reaches
-- the database rather than a 503.
-- change_password hashes twice (the old password's check, the new one's hash)
-- and gets the same limit. refresh_token, verify_token, logout and logout_all
-- check a signature, not a password: no limit.
-- Rate limits per client address: the concurrency limit keeps a flood of
-- sign-ins from the pool, but not from a core, since every attempt that gets
-- the slot is a bcrypt. From one address, identify, access_token and register
-- allow a burst of 30, then one call every 2 s (like Supabase Auth's 30 per
-- bucket); change_password, already behind a token, 10 a minute. Scope 'all':
-- a token does not make password guessing cheaper, and some clients send one
-- (an anonymous key) on every call. Past it, 429 PGRST160 before any database
-- work. Behind a reverse proxy, set server.trusted_proxies, or every client
-- shares the proxy's address (the gateway warns when it sees forwarding
-- headers from an untrusted peer). To lift one for a load test or a local
-- suite: alter function ... reset pgrpc.rate_limit (bench/lift_rate_limits.sql
-- does it for every function of api).
-- More cores: raise max_concurrency to about half the database's cores.
-- Change the limits here: this file is re-applied on every start and by
-- pgrpc migrate, so an ALTER FUNCTION by hand lasts until then.
alter function api.identify(text, text) set pgrpc.max_concurrency = '1';
alter function api.identify(text, text) set pgrpc.max_queue = '8';
alter function api.access_token(text, text) set pgrpc.max_concurrency = '1';
alter function api.access_token(text, text) set pgrpc.max_queue = '8';
alter function api.register(text, text, text, text) set pgrpc.max_concurrency = '1';
alter function api.register(text, text, text, text) set pgrpc.max_queue = '32';
alter function api.register(text, text, text, text) set pgrpc.max_wait = '10';
alter function api.change_password(text, text) set pgrpc.max_concurrency = '1';
alter function api.change_password(text, text) set pgrpc.max_queue = '8';
alter function api.identify(text, text) set pgrpc.rate_limit = '30/minute';
alter function api.identify(text, text) set pgrpc.rate_limit_scope = 'all';
alter function api.access_token(text, text) set pgrpc.rate_limit = '30/minute';
alter function api.access_token(text, text) set pgrpc.rate_limit_scope = 'all';
alter function api.register(text, text, text, text) set pgrpc.rate_limit = '30/minute';
alter function api.register(text, text, text, text) set pgrpc.rate_limit_scope = 'all';
alter function api.change_password(text, text) set pgrpc.rate_limit = '10/minute';
alter function api.change_password(text, text) set pgrpc.rate_limit_scope = 'all';
