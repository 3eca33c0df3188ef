-- Failing without RAISE: for a function that must commit what it recorded
-- (a failed login) and still answer with an error.
create function auth.respond_error(
  p_status int,
  p_code text,
  p_message text,
  p_details text default null,
  p_headers json default null
) returns void
language plpgsql volatile
as $$
begin
  -- The gateway answers response.error as the error body, with
  -- response.status, and still commits the transaction. PL/pgSQL rather than
  -- SQL: its statements' plans are kept for the session, where a SQL function
  -- called from PL/pgSQL is planned again on every call (~35 us a call).
  perform set_config('response.status', p_status::text, true);
  perform set_config('response.error', json_build_object(
    'code', p_code, 'message', p_message, 'details', p_details, 'hint', null)::text, true);
  if p_headers is not null then
    perform set_config('response.headers', p_headers::text, true);
  end if;
end
$$;
comment on function auth.respond_error(int, text, text, text, json) is
  'Answer with an error (response.status + response.error, optional response.headers) while letting the transaction commit.';
alter function auth.respond_error(int, text, text, text, json) owner to auth_owner;
revoke all on function auth.respond_error(int, text, text, text, json) from public;
