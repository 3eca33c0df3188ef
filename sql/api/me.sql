-- GET /rpc/me → the caller's own profile, through row-level security.
create function api.me(
  out id bigint,
  out username text,
  out email text,
  out role text,
  out created_at timestamptz
)
language plpgsql stable
as $$
begin
  -- SECURITY INVOKER on purpose: the policy users_self on auth.users shows the
  -- request role only the row whose id is its token's sub, and the column
  -- grants never include password_hash. No WHERE needed, none trusted.
  select u.id, u.username, u.email, u.role, u.created_at
    into me.id, me.username, me.email, me.role, me.created_at
    from auth.users u;
  if not found then
    raise sqlstate 'PT404' using message = 'no profile for this token',
      hint = 'The token''s user no longer exists, or the token names no user (sub)';
  end if;
  -- First the user, then the session, as everywhere.
  perform auth.check_session();
end
$$;
comment on function api.me() is 'The caller''s profile {id, username, email, role, created_at}; 401 anonymous or session ended, 404 no such user.';
revoke all on function api.me() from public;
grant execute on function api.me() to app_user, app_admin;
