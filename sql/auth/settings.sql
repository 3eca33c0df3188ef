-- The settings row (auth.settings), read by every auth function.
create or replace function auth.current_settings() returns auth.settings
language plpgsql stable
as $$
declare
  v_settings auth.settings;
begin
  select * into v_settings from auth.settings;
  if not found then
    raise exception 'auth.settings has no row'
      using hint = 'insert into auth.settings default values';
  end if;
  return v_settings;
end
$$;
comment on function auth.current_settings() is 'The one row of auth.settings; fails loudly when a DBA deleted it.';
alter function auth.current_settings() owner to auth_owner;
revoke all on function auth.current_settings() from public;
