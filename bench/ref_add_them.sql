-- pgbench reference for POST /rpc/add_them: the statements the gateway sends for
-- one request (captured with log_statement = all at 6fcde33, less the
-- "/* role … */" comment that keys its statement cache; see src/query.rs
-- SETUP_SQL and call_query), as one pipeline, run by bench/run with -M prepared.
-- The :names are bound parameters given with -D, with the values the gateway
-- binds for wrk's requests. BEGIN READ ONLY: add_them is IMMUTABLE. When the
-- gateway's statements change, capture them again and update both ref_*.sql.
\startpipeline
begin read only;
select set_config('role', :role, true), set_config('request.jwt.claims', :claims, true), set_config('request.method', :method, true), set_config('request.path', :path, true), set_config('request.headers', :headers, true), set_config('request.cookies', :cookies, true), set_config('search_path', :search_path, true), set_config('request.client_ip', :client_ip, true);
SELECT (json_agg(pgrst_t.pgrst_scalar) -> 0)::text, count(*), nullif(current_setting('response.headers', true), ''), nullif(current_setting('response.status', true), ''), nullif(current_setting('response.error', true), ''), NULL::int8 FROM (SELECT pgrst_call.pgrst_scalar FROM json_to_record(:payload::json) AS pgrst_args("a" integer, "b" integer), LATERAL "api"."add_them"("a" := pgrst_args."a", "b" := pgrst_args."b") AS pgrst_call(pgrst_scalar)) pgrst_t;
commit;
\endpipeline
