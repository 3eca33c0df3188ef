-- Called by the embedded default right after its first migration: a
-- ready-to-use invite, printed with a curl line, so a newcomer can register.
create function pgrpc.on_first_start() returns void
language plpgsql volatile
as $$
declare
  v_invite auth.invites;
  -- The gateway may tell us where it listens; the embedded default is this.
  v_base text := coalesce(nullif(current_setting('pgrpc.base_url', true), ''), 'http://127.0.0.1:3000');
begin
  insert into auth.invites as i (max_uses, expires_at)
  select s.invite_max_uses, now() + s.invite_valid_for from auth.current_settings() s
  returning * into v_invite;
  raise notice 'Invite code for the first user: % (uses: %, expires %)',
    v_invite.code, v_invite.max_uses, to_char(v_invite.expires_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"');
  raise notice 'Register: curl -s %/rpc/register -H ''Content-Type: application/json'' -d ''{"username":"alice","password":"correct horse battery","email":"alice@example.com","invite_code":"%"}''',
    v_base, v_invite.code;
end
$$;
comment on function pgrpc.on_first_start() is 'Creates the first invite and prints it (NOTICE) with a curl example; run once by the embedded default.';
revoke all on function pgrpc.on_first_start() from public;
