-- The gateway prepares each call once per connection as `authenticator`,
-- before switching to the request's role; the call names types of `auth`
-- (the claims type), so authenticator must be able to look them up. USAGE is
-- name lookup only: nothing here lets it read a table or run a function.
grant usage on schema auth to authenticator;
