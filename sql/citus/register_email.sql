-- Citus only (nothing without the citus extension): register also claims the
-- email in auth.user_emails, the email-keyed table of migration V0015, in the
-- same distributed transaction. auth.users is sharded by username, so its
-- shards cannot see each other's emails; the claim is the one place two
-- registrations with one email meet (the same row of the same shard), and
-- the second waits for the first and fails with the 409 register answers for
-- a taken email, rolling back its user and its invite use. It also names a
-- taken username as register does without Citus (see below).
-- The function api/register.sql defined moves to auth (never exposed), under
-- its own name (its body qualifies parameters with it); api.register wraps
-- it, with the same signature, rights and comment.
do $$
declare
  v_comment text;
begin
  if not exists (select from pg_extension where extname = 'citus')
     or to_regprocedure('api.register(text, text, text, text)') is null then
    return;
  end if;
  v_comment := obj_description('api.register(text, text, text, text)'::regprocedure, 'pg_proc');
  drop function if exists auth.register(text, text, text, text);
  alter function api.register(text, text, text, text) set schema auth;
  revoke all on function auth.register(text, text, text, text) from public, web_anon, app_user, app_admin;

  create function api.register(
    username text default null,
    password text default null,
    email text default null,
    invite_code text default null
  ) returns auth.token_result
  language plpgsql volatile
  security definer
  set search_path = pg_catalog, pg_temp
  as $fn$
  declare
    v_result auth.token_result;
    v_message text;
  begin
    begin
      v_result := auth.register(register.username, register.password, register.email, register.invite_code);
    exception when unique_violation then
      -- On a shard the constraint is named users_username_key_<shard id>,
      -- which register does not recognise ("already registered"); the one
      -- unique constraint of the sharded auth.users is the username's.
      get stacked diagnostics v_message = message_text;
      raise sqlstate '23505' using message = case v_message
        when 'already registered' then 'username is already taken'
        else v_message
      end;
    end;
    begin
      insert into auth.user_emails (email, username)
      values (auth.valid_email(register.email), register.username);
    exception when unique_violation then
      raise sqlstate '23505' using message = 'email is already registered';
    end;
    return v_result;
  end
  $fn$;
  execute format('comment on function api.register(text, text, text, text) is %L', v_comment);
  alter function api.register(text, text, text, text) owner to auth_owner;
  revoke all on function api.register(text, text, text, text) from public;
  grant execute on function api.register(text, text, text, text) to web_anon, app_user, app_admin;
end
$$;
