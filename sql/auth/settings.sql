-- The settings row (auth.settings), read by every auth function, and the
-- request's claims as the gateway set them.
create function auth.current_settings() returns auth.settings
language plpgsql stable
as $$
declare
  v_settings auth.settings;
begin
  select * into v_settings from auth.settings;
  if not found then
    -- The server's misconfiguration, never the client's mistake: PT500 (HTTP
    -- 500) with a generic message, and the reason in the database log only
    -- (LOG goes to the server log, not to the client).
    raise log 'auth.settings has no row, so every auth function fails; fix: insert into auth.settings default values';
    raise sqlstate 'PT500' using message = 'Internal server error';
  end if;
  return v_settings;
end
$$;
comment on function auth.current_settings() is
  'The one row of auth.settings; PT500 (logged with the fix) when a DBA deleted it.';
alter function auth.current_settings() owner to auth_owner;
revoke all on function auth.current_settings() from public;

create function auth.request_claims() returns json
language sql stable
as $$
  -- Set by the gateway for every request (transaction-local); unset or empty
  -- outside a request, e.g. in psql.
  select nullif(current_setting('request.jwt.claims', true), '')::json
$$;
comment on function auth.request_claims() is
  'The verified claims of the request''s token (request.jwt.claims) as json; null outside a request.';
alter function auth.request_claims() owner to auth_owner;
revoke all on function auth.request_claims() from public;
