-- POST /rpc/create_invite {max_uses?, valid_for?} → the invite (app_admin only).
create function api.create_invite(max_uses int default null, valid_for interval default null)
returns auth.invites
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_settings auth.settings := auth.current_settings();
  v_invite auth.invites;
begin
  perform auth.check_session();
  if create_invite.max_uses < 1 then
    raise sqlstate 'PT422' using message = 'max_uses must be at least 1';
  end if;
  if create_invite.valid_for <= interval '0' then
    raise sqlstate 'PT422' using message = 'valid_for must be a positive interval';
  end if;
  insert into auth.invites as i (max_uses, expires_at, created_by)
  values (coalesce(create_invite.max_uses, v_settings.invite_max_uses),
          now() + coalesce(create_invite.valid_for, v_settings.invite_valid_for),
          auth.request_claims() ->> 'sub')
  returning * into v_invite;
  return v_invite;
end
$$;
comment on function api.create_invite(int, interval) is
  'Create an invite code (random UUID) usable max_uses times (default 1) for valid_for (default 7 days). app_admin only: anonymous or session ended 401, other roles 403; 422 bad max_uses/valid_for.';
alter function api.create_invite(int, interval) owner to auth_owner;
revoke all on function api.create_invite(int, interval) from public;
grant execute on function api.create_invite(int, interval) to app_admin;
