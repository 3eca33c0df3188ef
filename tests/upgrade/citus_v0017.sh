#!/bin/bash
# Upgrade check of migration V0017 (citus sessions on shards) on a real 3-node Citus topology.
#
# Old state: migrations V0001..V0016 and sql/ of OLD (39fc166), with data made by the old
# functions (register, delegated identify/access_token, refresh, logout, DBA ends, a deleted
# user). New state: HEAD's V0017, then HEAD's sql/ in one transaction. Compares every session
# before/after and calls the new functions. Rerunnable: wipes /tmp/upg first; stops its own
# clusters at the end. Does not build or run the gateway.
#
#   tests/upgrade/citus_v0017.sh              # HEAD's V0017 (about 30 s; exit 1 on a failed check)
#
# A one-off check of that upgrade (session 6), not part of `cargo test`: it needs Citus installed
# (../shared/citus/build.sh) and the git history (39fc166). It found that 30810c8's V0017 could not
# be applied to a database with the previous sql/ loaded; V0017 was fixed before it landed.
#
# Output: /tmp/upg/out/*.txt (before/after tables, diffs, function results) and a summary on stdout.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OLD=${OLD:-39fc166}
NEW=${NEW:-HEAD}
D=/tmp/upg
BIN=/usr/lib/postgresql/15/bin
PORTS=(56001 56002 56003)
NODES=(coord worker1 worker2)
DB=pgrpc
OUT=$D/out

stop_all() {
  for n in "${NODES[@]}"; do
    if [ -f "$D/$n/postmaster.pid" ]; then
      runuser -u postgres -- "$BIN/pg_ctl" -D "$D/$n" -m fast -w stop >/dev/null 2>&1 || true
    fi
  done
}

# A previous run's clusters (only ours, by their data directories), then wipe.
stop_all
rm -rf "$D"
mkdir -p "$D" "$OUT"
chown postgres: "$D"
trap stop_all EXIT

say() { echo "== $*"; }
# psql on node i (0 coordinator) in database $DB; extra args passed on.
q() {
  local i=$1; shift
  psql -X -q -h "$D" -p "${PORTS[$i]}" -U postgres -d "$DB" -v ON_ERROR_STOP=1 "$@"
}
qa() { # unaligned, tuples only
  local i=$1; shift
  q "$i" -A -t "$@"
}

say "start 3 clusters (citus, PostgreSQL 15) in $D"
for i in 0 1 2; do
  n=${NODES[$i]}
  runuser -u postgres -- "$BIN/initdb" -D "$D/$n" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$D/$n.initdb.log" 2>&1 \
    || { echo "initdb $n failed"; cat "$D/$n.initdb.log"; exit 1; }
  runuser -u postgres -- "$BIN/pg_ctl" -D "$D/$n" -l "$D/$n.log" -w -o "\
 -k $D -p ${PORTS[$i]} -c listen_addresses= -c unix_socket_permissions=0700 \
 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
 -c shared_preload_libraries=citus -c max_worker_processes=64 -c max_connections=200 \
 -c citus.max_client_connections=-1 -c citus.log_remote_commands=off" start >/dev/null \
    || { echo "start $n failed"; tail -20 "$D/$n.log"; exit 1; }
done

say "database $DB with citus on every node; coordinator host; workers added"
for i in 0 1 2; do
  psql -X -q -h "$D" -p "${PORTS[$i]}" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "create database $DB" || exit 1
  q $i -c "create extension citus" || exit 1
done
q 0 -c "select citus_set_coordinator_host('$D', ${PORTS[0]})" >/dev/null || exit 1
q 0 -c "select citus_add_node('$D', ${PORTS[1]})" -c "select citus_add_node('$D', ${PORTS[2]})" >/dev/null || exit 1
qa 0 -c "select 'citus ' || extversion from pg_extension where extname = 'citus'"
qa 0 -c "select nodename || ':' || nodeport || ' ' || noderole from pg_dist_node order by nodeport"

say "old state: migrations V0001..V0016 of $OLD, each in its own transaction"
for f in $(git -C "$REPO" ls-tree --name-only "$OLD" migrations/ | sort -V); do
  git -C "$REPO" show "$OLD:$f" >"$D/old_$(basename "$f")"
  q 0 -1 -f "$D/old_$(basename "$f")" >"$D/old_$(basename "$f").log" 2>&1 \
    || { echo "FAIL: $f"; cat "$D/old_$(basename "$f").log"; exit 1; }
  echo "   applied $f"
done

load_sql() { # $1 commit, $2 output file
  : >"$2"
  git -C "$REPO" show "$1:sql/load_order.txt" | sed -e 's/#.*//' -e 's/[[:space:]]*$//' | grep -v '^$' | while read -r f; do
    printf -- '-- ===== sql/%s (%s)\n' "$f" "$1" >>"$2"
    git -C "$REPO" show "$1:sql/$f" >>"$2" || echo "MISSING sql/$f" >&2
    printf '\n' >>"$2"
  done
}
say "old state: sql/ of $OLD in load_order.txt order, one transaction"
load_sql "$OLD" "$D/old_sql.sql"
q 0 -1 -f "$D/old_sql.sql" >"$D/old_sql.log" 2>&1 || { echo "FAIL: old sql/"; cat "$D/old_sql.log"; exit 1; }

say "workers: request roles and auth_owner may log in (as tests/it/citus.rs finish_template)"
for i in 1 2; do
  q $i -c "set citus.enable_alter_role_propagation = off" \
    -c "alter role web_anon login" -c "alter role app_user login" -c "alter role app_admin login" \
    -c "alter role auth_owner login" || exit 1
done

say "old state: data"
cat >"$D/old_data.sql" <<'SQL'
\set ON_ERROR_STOP 1
\set pw 'correct horse battery'
\set code '00000000-0000-4000-8000-000000000001'
update auth.settings set bcrypt_cost = 4;
insert into auth.invites (code, max_uses, expires_at) values (:'code', 100, now() + interval '1 day');

-- alice: register (coordinator: auth.sessions), refreshed twice -> generation 2, rotated_at set; live.
select (api.register('alice', :'pw', 'alice@example.com', :'code')).token as alice_reg \gset
select (api.refresh_token(:'alice_reg'::auth.jwt_claims)).token as alice_r1 \gset
select (api.refresh_token(:'alice_r1'::auth.jwt_claims)).token as alice_r2 \gset

-- bob: register, then logout with his token (ended, logout).
select (api.register('bob', :'pw', 'bob@example.com', :'code')).token as bob_reg \gset
begin;
select set_config('request.jwt.claims', row_to_json(:'bob_reg'::auth.jwt_claims)::text, true) \g /dev/null
select api.logout();
commit;

-- carol: register (live), then delegated sign-ins (auth.session_starts on the shard):
--   'CAROL' (other case, stays a start), 'carol' (then refreshed: adopted into auth.sessions, gen 1),
--   access_token 'Carol' (stays a start).
select (api.register('carol', :'pw', 'carol@example.com', :'code')).token as carol_reg \gset
begin;
set local request.jwt.claims = '';
select (api.identify('CAROL', :'pw')).token as carol_start1 \gset
commit;
begin;
set local request.jwt.claims = '';
select (api.identify('carol', :'pw')).token as carol_start2 \gset
commit;
select (api.refresh_token(:'carol_start2'::auth.jwt_claims)).token as carol_start2_r1 \gset
begin;
set local request.jwt.claims = '';
select (api.access_token('Carol', :'pw')).access_token as carol_start3 \gset
commit;

-- dave: register + a delegated sign-in (a start), then the DBA ends his sessions and deletes him;
-- user_id set null by hand (on Citus the FK that did it is gone).
select (api.register('dave', :'pw', 'dave@example.com', :'code')).token as dave_reg \gset
begin;
set local request.jwt.claims = '';
select (api.identify('dave', :'pw')).token as dave_start1 \gset
commit;
select id as dave_id from auth.users where username = 'dave' \gset
begin;
select auth.end_user_sessions(:dave_id, 'user_deleted');
delete from auth.users where id = :dave_id;
update auth.sessions set user_id = null where user_id = :dave_id;
commit;

-- erin: as dave, but user_id left as it is (what Citus really leaves: a dangling id).
select (api.register('erin', :'pw', 'erin@example.com', :'code')).token as erin_reg \gset
select id as erin_id from auth.users where username = 'erin' \gset
begin;
select auth.end_user_sessions(:erin_id, 'user_deleted');
delete from auth.users where id = :erin_id;
commit;

-- frank: a delegated sign-in only (a start), user deleted without ending it (a DBA's slip):
-- the start's user_id dangles.
select (api.register('frank', :'pw', 'frank@example.com', :'code')).token as frank_reg \gset
begin;
set local request.jwt.claims = '';
select (api.identify('FRANK', :'pw')).token as frank_start1 \gset
commit;
delete from auth.users where username = 'frank';

-- gina: register, then ended by the DBA for a reason of his own.
select (api.register('gina', :'pw', 'gina@example.com', :'code')).token as gina_reg \gset
select auth.end_session((:'gina_reg'::auth.jwt_claims).sid, 'user_disabled');

-- heidi: register, a delegated sign-in, both live (kept for the checks after the upgrade).
select (api.register('heidi', :'pw', 'heidi@example.com', :'code')).token as heidi_reg \gset
begin;
set local request.jwt.claims = '';
select (api.identify('Heidi', :'pw')).token as heidi_start1 \gset
commit;

-- The tokens, for the checks after the upgrade.
create table public.upg_tokens (name text primary key, claims text not null);
insert into public.upg_tokens values
  ('alice_reg', :'alice_reg'), ('alice_r2', :'alice_r2'), ('bob_reg', :'bob_reg'),
  ('carol_reg', :'carol_reg'), ('carol_start1', :'carol_start1'), ('carol_start2_r1', :'carol_start2_r1'),
  ('carol_start3', :'carol_start3'), ('dave_reg', :'dave_reg'), ('dave_start1', :'dave_start1'),
  ('erin_reg', :'erin_reg'), ('frank_start1', :'frank_start1'), ('gina_reg', :'gina_reg'),
  ('heidi_reg', :'heidi_reg'), ('heidi_start1', :'heidi_start1');
SQL
# upg_tokens: a plain coordinator table of this script (public schema), not part of pgrpc.
q 0 -f "$D/old_data.sql" >"$D/old_data.log" 2>&1 || { echo "FAIL: old data"; cat "$D/old_data.log"; exit 1; }

# Every session, both tables, one canonical row each (a start is generation 0, never rotated or ended).
CANON_BEFORE="select s.id, s.user_id, s.created_at, s.generation, s.rotated_at, s.tokens_expire_at, s.ended_at, s.end_reason
  from auth.sessions s
 union all
select t.id, t.user_id, t.created_at, 0, null, t.tokens_expire_at, null, null
  from auth.session_starts t
 order by 1"
CANON_AFTER="select s.id, s.user_id, s.created_at, s.generation, s.rotated_at, s.tokens_expire_at, s.ended_at, s.end_reason
  from auth.sessions s order by 1"
q 0 -c "set timezone = 'UTC'" -c "select * from auth.sessions order by id" >"$OUT/before_sessions.txt"
q 0 -c "set timezone = 'UTC'" -c "select * from auth.session_starts order by id" >"$OUT/before_session_starts.txt"
q 0 -c "select id, username, email, role from auth.users order by id" >"$OUT/before_users.txt"
q 0 -c "set timezone = 'UTC'" -A -F '|' -c "$CANON_BEFORE" >"$OUT/before_canonical.txt"
# The key each row should get: the user's name for auth.sessions rows (its registered case), the
# sign-in's spelling for a start, '#deleted:<id>' for a session whose user is gone.
q 0 -A -F '|' -t -c "
create temporary table u as select u.id, u.username::text as username from auth.users u;
select s.id, coalesce(u.username, '#deleted:' || s.id)
  from auth.sessions s left join u on u.id = s.user_id
 union all
select t.id, t.username::text from auth.session_starts t
 order by 1" >"$OUT/expected_keys.txt"
echo "   before: $(qa 0 -c 'select count(*) from auth.sessions') rows in auth.sessions, $(qa 0 -c 'select count(*) from auth.session_starts') in auth.session_starts, $(qa 0 -c 'select count(*) from auth.users') users"
cat "$OUT/before_sessions.txt" "$OUT/before_session_starts.txt"

say "new state: V0017 of $NEW"
git -C "$REPO" show "$NEW:migrations/V0017__citus_sessions_on_shards.sql" >"$D/V0017.sql"
V0017_RESULT=PASS
if ! q 0 -1 -f "$D/V0017.sql" >"$OUT/V0017.log" 2>&1; then
  V0017_RESULT=FAIL
  echo "   FAIL: V0017 of $NEW did not apply (rolled back):"
  sed 's/^/   | /' "$OUT/V0017.log"
  exit 2
fi
sed 's/^/   | /' "$OUT/V0017.log"

say "new state: sql/ of $NEW in load_order.txt order, one transaction"
load_sql "$NEW" "$D/new_sql.sql"
NEWSQL_RESULT=PASS
if ! q 0 -1 -f "$D/new_sql.sql" >"$OUT/new_sql.log" 2>&1; then
  NEWSQL_RESULT=FAIL
  echo "   FAIL: sql/ of $NEW:"; sed 's/^/   | /' "$OUT/new_sql.log"; exit 3
fi

say "compare every session before/after"
q 0 -c "set timezone = 'UTC'" -c "select * from auth.sessions order by id" >"$OUT/after_sessions.txt"
cat "$OUT/after_sessions.txt"
q 0 -c "set timezone = 'UTC'" -A -F '|' -c "$CANON_AFTER" >"$OUT/after_canonical.txt"
if diff -u "$OUT/before_canonical.txt" "$OUT/after_canonical.txt" >"$OUT/canonical.diff"; then
  CMP_RESULT=PASS; echo "   PASS: every session identical (id, user_id, created_at, generation, rotated_at, tokens_expire_at, ended_at, end_reason), $(($(wc -l <"$OUT/after_canonical.txt") - 2)) rows"
else
  CMP_RESULT=FAIL; echo "   FAIL: sessions differ:"; sed 's/^/   | /' "$OUT/canonical.diff"
fi
q 0 -A -F '|' -t -c "select s.id, s.username::text from auth.sessions s order by 1" >"$OUT/after_keys.txt"
if diff -u "$OUT/expected_keys.txt" "$OUT/after_keys.txt" >"$OUT/keys.diff"; then
  KEY_RESULT=PASS; echo "   PASS: every username (shard key) as expected"
else
  KEY_RESULT=FAIL; echo "   FAIL: usernames differ from the expected:"; sed 's/^/   | /' "$OUT/keys.diff"
fi
qa 0 -c "select '   auth.sessions: partmethod ' || p.partmethod::text || ', colocated with auth.users: ' ||
  (p.colocationid = (select colocationid from pg_dist_partition where logicalrelid = 'auth.users'::regclass))
  from pg_dist_partition p where p.logicalrelid = 'auth.sessions'::regclass"
qa 0 -c "select '   auth.session_starts exists: ' || (to_regclass('auth.session_starts') is not null)"
# Each row on the shard of its key, as Citus routes it: read through the key.
MISROUTED=$(qa 0 -c "
do \$\$ declare r record; n int := 0; begin
  for r in select id, username from auth.sessions loop
    if not exists (select from auth.sessions s where s.username operator(extensions.=) r.username and s.id = r.id) then n := n + 1; end if;
  end loop;
  raise notice 'misrouted=%', n; end \$\$" 2>&1 | sed -n 's/.*misrouted=//p')
echo "   rows not found through their key: $MISROUTED"
qa 0 -c "select '   rows per worker: ' || string_agg(nodeport || '=' || n, ' ' order by nodeport) from (
  select p.nodeport, count(*) n from auth.sessions s
    join pg_dist_shard_placement p on p.shardid = get_shard_id_for_distribution_column('auth.sessions', s.username)
   group by 1) t"
qa 0 -c "select '   coordinator''s local (shell) table of auth.sessions: ' || pg_relation_size('auth.sessions') || ' bytes'"

WORKER_RESULT=PASS
for i in 1 2; do
  r=$(qa $i -c "set citus.override_table_visibility = off" -c "select 'session_starts=' || (to_regclass('auth.session_starts') is not null)
     || ' old_functions=' || (select count(*) from pg_proc p where p.pronamespace = 'auth'::regnamespace
                                and p.proname in ('issue_start_claims', 'session_start', 'adopt_session', 'adopt_user_sessions'))
     || ' sessions_shards=' || (select count(*) from pg_class c where c.relname ~ '^sessions_[0-9]+$' and c.relnamespace = 'auth'::regnamespace)
     || ' session_starts_shards=' || (select count(*) from pg_class c where c.relname ~ '^session_starts_[0-9]+$')")
  echo "   worker ${PORTS[$i]}: $r"
  case "$r" in "session_starts=false old_functions=0 sessions_shards="*" session_starts_shards=0") ;; *) WORKER_RESULT=FAIL;; esac
done
r=$(qa 0 -c "select count(*) from pg_dist_object o where o.objid = coalesce(to_regclass('auth.session_starts')::oid, 0)
   or o.objid in (select oid from pg_proc where proname in ('issue_start_claims', 'session_start', 'adopt_session', 'adopt_user_sessions'))")
echo "   coordinator: pg_dist_object entries of session_starts or its old functions: $r"
[ "$r" = 0 ] || WORKER_RESULT=FAIL

say "new functions"
q 0 -c "set timezone = 'UTC'" -c "select * from pgrpc.ended_sessions() order by sid" >"$OUT/ended_sessions.txt" 2>&1; ES_RC=$?
cat "$OUT/ended_sessions.txt"
# Expected: every ended session whose tokens may still be valid.
EXPECTED_ENDED=$(qa 0 -c "select string_agg(id::text, ',' order by id) from auth.sessions where ended_at is not null and tokens_expire_at > now()")
GOT_ENDED=$(qa 0 -c "select string_agg(sid::text, ',' order by sid) from pgrpc.ended_sessions()" 2>/dev/null)
if [ $ES_RC = 0 ] && [ -n "$EXPECTED_ENDED" ] && [ "$EXPECTED_ENDED" = "$GOT_ENDED" ]; then ES_RESULT=PASS; else ES_RESULT=FAIL; fi
echo "   pgrpc.ended_sessions(): $ES_RESULT (expected $EXPECTED_ENDED)"

# live_session_on_shard: alice's (generation 2, from auth.sessions) and carol's CAROL start (from
# auth.session_starts), each by the key as written and in another case.
LIVE_RESULT=PASS
for spec in "alice_r2 alice" "alice_r2 ALICE" "carol_start1 CAROL" "carol_start1 carol" "carol_start3 Carol" "heidi_start1 heidi"; do
  set -- $spec
  r=$(qa 0 -F ' ' -c "select s.id, s.user_id, s.generation, s.username
     from upg_tokens t, auth.live_session_on_shard((t.claims::auth.jwt_claims).sid, (t.claims::auth.jwt_claims).sub, '$2', 'PT401') s
    where t.name = '$1'" 2>&1)
  echo "   live_session_on_shard($1's sid, sub, '$2', 'PT401') -> $r"
  case "$r" in *ERROR*|"") LIVE_RESULT=FAIL;; esac
done
# An ended session must be refused.
r=$(qa 0 -c "select auth.live_session_on_shard((t.claims::auth.jwt_claims).sid, (t.claims::auth.jwt_claims).sub, 'bob', 'PT401')
   from upg_tokens t where t.name = 'bob_reg'" 2>&1)
echo "   live_session_on_shard(bob's ended sid, …, 'bob') -> $r"
case "$r" in *"session has ended"*) ;; *) LIVE_RESULT=FAIL;; esac
r=$(qa 0 -c "select auth.live_session_on_shard((t.claims::auth.jwt_claims).sid, (t.claims::auth.jwt_claims).sub, null, 'PT401')
   from upg_tokens t where t.name = 'dave_reg'" 2>&1)
echo "   live_session_on_shard(dave's ended sid of a deleted user, …, null) -> $r"
case "$r" in *"session has ended"*) ;; *) LIVE_RESULT=FAIL;; esac

# end_session of heidi's start (migrated from auth.session_starts): it must end it, with the NOTIFY.
END_RESULT=FAIL
HEIDI_SID=$(qa 0 -c "select (claims::auth.jwt_claims).sid from upg_tokens where name = 'heidi_start1'")
r=$(q 0 -c "listen pgrpc" -c "select auth.end_session('$HEIDI_SID', 'test')" -c "select 1" 2>&1)
echo "   auth.end_session('$HEIDI_SID', 'test'):"; echo "$r" | sed 's/^/   | /'
row=$(qa 0 -F ' ' -c "select ended_at is not null, end_reason from auth.sessions where id = '$HEIDI_SID'")
echo "   heidi's start afterwards: ended=$row"
if [ "$row" = "t test" ] && echo "$r" | grep -q "session ended $HEIDI_SID"; then END_RESULT=PASS; fi
# And it is now among the ended sessions.
qa 0 -c "select '   in pgrpc.ended_sessions(): ' || exists (select from pgrpc.ended_sessions() where sid = '$HEIDI_SID')"
# end_session of an ended session of a deleted user: nothing changes.
DAVE_SID=$(qa 0 -c "select (claims::auth.jwt_claims).sid from upg_tokens where name = 'dave_reg'")
q 0 -c "select auth.end_session('$DAVE_SID', 'again')" >/dev/null 2>&1
qa 0 -F ' ' -c "select '   dave''s (ended, deleted user) after end_session again: ' || end_reason from auth.sessions where id = '$DAVE_SID'"

say "extra: token calls on sessions made before the upgrade (delegated, by username)"
EXTRA_RESULT=PASS
for spec in "alice_r2 alice 3" "carol_start1 CAROL 1" "carol_start2_r1 carol 2"; do
  set -- $spec
  r=$(qa 0 -F ' ' -c "select (x).token.gen, (x).token.sid, (x).\"user\" from (
        select api.refresh_token(t.claims::auth.jwt_claims, '$2') x from upg_tokens t where t.name = '$1') y" 2>&1)
  g=$(qa 0 -c "select generation from auth.sessions s, upg_tokens t where t.name = '$1' and s.id = (t.claims::auth.jwt_claims).sid")
  echo "   api.refresh_token($1, '$2') -> $r ; generation now $g (expected $3)"
  case "$r" in *ERROR*|"") EXTRA_RESULT=FAIL;; esac
  [ "$g" = "$3" ] || EXTRA_RESULT=FAIL
done
r=$(qa 0 -c "select api.refresh_token(t.claims::auth.jwt_claims, 'bob') from upg_tokens t where t.name = 'bob_reg'" 2>&1)
echo "   api.refresh_token(bob_reg (ended), 'bob') -> $r"
case "$r" in *"session has ended"*) ;; *) EXTRA_RESULT=FAIL;; esac
r=$(q 0 -A -t -c "begin" -c "set local request.jwt.claims = ''" -c "select (api.identify('alice', 'correct horse battery')).token.sid" -c "commit" 2>&1)
echo "   api.identify('alice', …) after the upgrade -> sid $r"
n=$(qa 0 -c "select count(*) from auth.sessions where id::text = '$(echo "$r" | tail -1)' and username = 'alice'")
[ "$n" = 1 ] || EXTRA_RESULT=FAIL

say "extra: a fresh database (no data) with every migration of $NEW (V0017 as applied above) and $NEW's sql/"
FRESH_RESULT=PASS
F=pgrpc_fresh
for i in 0 1 2; do
  psql -X -q -h "$D" -p "${PORTS[$i]}" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "create database $F" || FRESH_RESULT=FAIL
  psql -X -q -h "$D" -p "${PORTS[$i]}" -U postgres -d $F -v ON_ERROR_STOP=1 -c "create extension citus" || FRESH_RESULT=FAIL
done
qf() { psql -X -q -h "$D" -p "${PORTS[$1]}" -U postgres -d $F -v ON_ERROR_STOP=1 "${@:2}"; }
qf 0 -c "select citus_set_coordinator_host('$D', ${PORTS[0]})" -c "select citus_add_node('$D', ${PORTS[1]})" -c "select citus_add_node('$D', ${PORTS[2]})" >/dev/null || FRESH_RESULT=FAIL
for f in $(git -C "$REPO" ls-tree --name-only "$NEW" migrations/ | sort -V); do
  src=$D/fresh_$(basename "$f"); git -C "$REPO" show "$NEW:$f" >"$src"
  qf 0 -1 -f "$src" >"$D/fresh_$(basename "$f").log" 2>&1 || { echo "   FAIL: $src"; cat "$D/fresh_$(basename "$f").log"; FRESH_RESULT=FAIL; break; }
done
qf 0 -1 -f "$D/new_sql.sql" >"$D/fresh_sql.log" 2>&1 || { echo "   FAIL: sql/"; cat "$D/fresh_sql.log"; FRESH_RESULT=FAIL; }
for i in 1 2; do
  qf $i -c "set citus.enable_alter_role_propagation = off" -c "alter role web_anon login" -c "alter role app_user login" \
    -c "alter role app_admin login" -c "alter role auth_owner login" >/dev/null 2>&1
done
r=$(qf 0 -A -t 2>&1 <<'SQL'
\set pw 'correct horse battery'
update auth.settings set bcrypt_cost = 4;
insert into auth.invites (code, max_uses, expires_at) values ('00000000-0000-4000-8000-000000000002', 10, now() + interval '1 day');
select (api.register('zoe', :'pw', 'zoe@example.com', '00000000-0000-4000-8000-000000000002')).token as reg \gset
begin;
set local request.jwt.claims = '';
select (api.identify('ZOE', :'pw')).token as t \gset
commit;
select (api.refresh_token(:'t'::auth.jwt_claims, 'ZOE')).token.gen;
select count(*) || ' sessions, ' || count(*) filter (where generation = 1) || ' at gen 1' from auth.sessions;
SQL
)
echo "   fresh: refresh gen, sessions: $(echo $r)"
[ "$(echo $r)" = "1 2 sessions, 1 at gen 1" ] || FRESH_RESULT=FAIL

say "summary"
printf '   %-58s %s\n' \
  "V0017 of $NEW applies to the old state with data" "$V0017_RESULT" \
  "sql/ of $NEW loads after it" "$NEWSQL_RESULT" \
  "every session kept (incl. starts, deleted users)" "$CMP_RESULT" \
  "username (shard key) of every session" "$KEY_RESULT" \
  "pgrpc.ended_sessions()" "$ES_RESULT" \
  "auth.live_session_on_shard (live found, ended refused)" "$LIVE_RESULT" \
  "auth.end_session ends a migrated session (+ NOTIFY)" "$END_RESULT" \
  "extra: refresh/identify on pre-upgrade sessions" "$EXTRA_RESULT" \
  "no session_starts leftovers on workers / pg_dist_object" "$WORKER_RESULT" \
  "extra: fresh database, all migrations + sql/" "$FRESH_RESULT"
say "stopping the clusters"
stop_all
trap - EXIT
# Non-zero when anything failed (HEAD's V0017 included, even when the fix then passed).
for r in "$V0017_RESULT" "$NEWSQL_RESULT" "$CMP_RESULT" "$KEY_RESULT" "$ES_RESULT" "$LIVE_RESULT" "$END_RESULT" "$EXTRA_RESULT" "$WORKER_RESULT" "$FRESH_RESULT"; do
  [ "$r" = PASS ] || exit 1
done
exit 0
