-- Citus: distribute the auth tables when the citus extension is installed; on plain PostgreSQL this does nothing.
--
-- Why this shape (README "Citus"):
-- * auth.users is distributed by username, turned into citext (pgcrypto's
--   neighbour in schema extensions): citext hashes and compares without
--   case, so every spelling of a name lands on one shard. Citus can only
--   enforce a uniqueness that includes the distribution column, and with
--   citext the case-insensitive uniqueness of usernames is exactly the
--   primary key (username), keeping the constraint name users_username_key
--   that register reports as "username is already taken". (A generated
--   lower(username) column cannot be a distribution column.) The id stays an identity column (Citus gives each node its own
--   range), but its primary key goes: a unique id across shards cannot be
--   enforced, and nothing references users(id) at this point.
-- * auth.login_failures is distributed by its username (the lower-cased
--   name, citext too: co-location needs the same type) and co-located with
--   auth.users: a user's row and its failures live on the same worker. Its
--   primary key (username, source) of V0007 includes the distribution
--   column, so per-address counting is enforced per shard as before.
-- * Email uniqueness cannot be enforced on a table sharded by username, so
--   auth.user_emails (email primary key, constraint users_email_key) is
--   distributed by email; sql/citus/register_email.sql makes register claim the email
--   there in the same distributed transaction, so of two registrations with
--   one email exactly one commits, whatever shards their usernames are on.
-- * auth.settings and auth.invites are reference tables (a copy on every
--   node): settings are read by every call, and an invite is written once
--   per registration; a reference table's row lock is taken on every copy in
--   the same order, so two registrations racing for a single-use code still
--   give exactly one user (the second re-checks uses < max_uses after the
--   first commits).
-- * auth.sessions (V0008) and auth.user_login_failures (V0007) stay plain
--   tables on the coordinator. Both are keyed by user id, which is not the
--   distribution column of auth.users, so their foreign keys to users(id)
--   cannot be kept in any Citus layout (a reference table cannot reference
--   a distributed one; distributed tables only by their co-located
--   distribution column) and are dropped: ids are never reused, so a row of
--   a deleted user only lingers (sessions: its user_id is no longer set to
--   null). Kept local, the sessions triggers (the NOTIFY that tells the
--   gateways a session ended, the guard that keeps it ended) run where the
--   gateways listen, which a shard on a worker would not; Citus refuses
--   triggers on distributed and reference tables anyway (without
--   citus.enable_unsafe_triggers). Every call that touches them runs on the
--   coordinator (they are not delegated) in the same distributed
--   transaction as its shard writes. The triggers on auth.users that end a
--   user's sessions cannot exist on Citus either: sql/citus/ makes
--   change_password end them itself, and a DBA who disables, re-roles or
--   deletes a user calls auth.end_user_sessions(id, reason) (README).
-- * Any other table of auth (added by a later migration) becomes a reference
--   table when Citus allows it, else stays on the coordinator with a NOTICE:
--   a DBA decides how to distribute it.
-- Citus must be installed (shared_preload_libraries, CREATE EXTENSION citus
-- in this database on every node, workers added with citus_add_node) before
-- migrating; distributing an existing database later runs this same file.
do $$
declare
  v_table regclass;
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return;
  end if;
  -- One connection per worker for all of it: DDL and distribution in one
  -- transaction must not fan out over parallel connections.
  set local citus.multi_shard_modify_mode = 'sequential';

  -- users -> invites is put back once both are distributed: with it in
  -- place, making invites a reference table would first turn users into a
  -- coordinator-local Citus table, which cannot be distributed any more
  -- (it has an identity column).
  alter table auth.users drop constraint users_invite_code_fkey;
  alter table auth.user_login_failures drop constraint user_login_failures_user_id_fkey;
  alter table auth.sessions drop constraint sessions_user_id_fkey;
  perform create_reference_table('auth.settings');
  perform create_reference_table('auth.invites');

  -- citext: its hash and equality ignore case, so the shard of a username
  -- is the shard of every spelling of it, and the primary key is the
  -- case-insensitive uniqueness that users_username_key enforced before.
  create extension if not exists citext with schema extensions;
  alter table auth.users drop constraint users_pkey;
  drop index auth.users_username_key;
  drop index auth.users_email_key;
  alter table auth.users alter column username type extensions.citext;
  alter table auth.users add constraint users_username_key primary key (username);
  perform create_distributed_table('auth.users', 'username');
  alter table auth.users add constraint users_invite_code_fkey
    foreign key (invite_code) references auth.invites (code) on delete set null;

  alter table auth.login_failures alter column username type extensions.citext;
  perform create_distributed_table('auth.login_failures', 'username', colocate_with => 'auth.users');

  create table auth.user_emails (
    email text constraint users_email_key primary key,
    username extensions.citext not null
  );
  comment on table auth.user_emails is 'Citus only: one row per registered email, distributed by email, so that emails stay unique across shards';
  alter table auth.user_emails owner to auth_owner;
  insert into auth.user_emails (email, username) select u.email, u.username from auth.users u;
  perform create_distributed_table('auth.user_emails', 'email');

  for v_table in
    select c.oid::regclass
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'auth' and c.relkind in ('r', 'p')
       and not exists (select from pg_dist_partition p where p.logicalrelid = c.oid)
       and c.oid not in ('auth.sessions'::regclass, 'auth.user_login_failures'::regclass)
  loop
    begin
      perform create_reference_table(v_table);
    exception when others then
      raise notice 'citus: % stays on the coordinator (%)', v_table, sqlerrm;
    end;
  end loop;
end
$$;
