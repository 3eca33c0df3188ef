-- pgbench reference for POST /rpc/identify: the gateway's statements for one
-- request as one pipeline (see ref_add_them.sql), signing in as a random user of
-- bench/fixture.sql. The only difference: the payload is built in SQL from a
-- random number (pgbench variables are numbers), which costs nothing next to bcrypt.
\set u random(1, 1000)
\startpipeline
begin;
select set_config('role', :role, true), set_config('request.jwt.claims', :claims, true), set_config('request.method', :method, true), set_config('request.path', :path, true), set_config('request.headers', :headers, true), set_config('request.cookies', :cookies, true), set_config('search_path', :search_path, true), set_config('request.client_ip', :client_ip, true);
SELECT (json_agg(pgrst_t) -> 0)::text, count(*), nullif(current_setting('response.headers', true), ''), nullif(current_setting('response.status', true), ''), nullif(current_setting('response.error', true), ''), NULL::int8 FROM (SELECT pgrst_call.* FROM json_to_record(format('{"username":"bench%s","password":"bench-password-%s"}', lpad(:u::text, 4, '0'), lpad(:u::text, 4, '0'))::json) AS pgrst_args("username" text, "password" text), LATERAL "api"."identify"("username" := pgrst_args."username", "password" := pgrst_args."password") pgrst_call) pgrst_t;
commit;
\endpipeline
