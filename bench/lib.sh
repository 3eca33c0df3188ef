# shellcheck shell=bash
# Shared by bench/run and bench/profile (sourced, not run): tools, the gateway's
# life cycle on a throwaway embedded cluster, the fixture, and the load tools.
# Needs: ROOT, DATA (the throwaway directory), PORT, ADMIN_PORT, TMP (raw outputs).

# The binary under test: --bin (BENCH_BIN), else this tree's release build.
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/pgrpc}"
GW_PID=""

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wrk, pgbench, psql, curl; install what is missing from Debian's packages.
ensure_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v curl >/dev/null || missing+=(curl)
  command -v pgbench >/dev/null || missing+=(postgresql-client)
  command -v psql >/dev/null || missing+=(postgresql-client)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    if ! apt-get install -y "${missing[@]}" >"$TMP/apt.tmp" 2>&1; then
      apt-get update >>"$TMP/apt.tmp" 2>&1 || true
      apt-get install -y "${missing[@]}" >>"$TMP/apt.tmp" 2>&1 || die "cannot install ${missing[*]} (see $TMP/apt.tmp)"
    fi
  fi
}

# oha (a Rust HTTP load generator, crates.io) measures latency per request
# without wrk's coordinated-omission correction, like pgbench's per-transaction
# log does for the reference. Installed with cargo when missing (a few minutes,
# once); BENCH_NO_OHA=1 skips it and the latency point.
ensure_oha() {
  [[ "${BENCH_NO_OHA:-0}" == 1 ]] && return 1
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v oha >/dev/null; then
    log "installing oha (cargo install oha --locked; a few minutes, once)"
    cargo install oha --locked >"$TMP/oha-install.tmp" 2>&1 || { log "cannot install oha (see $TMP/oha-install.tmp)"; return 1; }
  fi
}

build() {
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet) || die "release build failed"
}

# The environment every pgrpc invocation of the benchmark gets (call in a
# subshell). Any other PGRPC_* set by the caller (e.g. PGRPC_DB_POOL=20) passes
# through; these the harness owns. Runs in the repository, so config.toml applies.
gw_exports() {
  cd "$ROOT" || exit 1
  export PGRPC_DB_DATA_DIR="$DATA/pg" PGRPC_SERVER_PORT="$PORT" PGRPC_ADMIN_PORT="$ADMIN_PORT" \
    PGRPC_SERVER_HOST=127.0.0.1 PGRPC_LOG_LEVEL="${PGRPC_LOG_LEVEL:-warn}"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# shellcheck disable=SC2034  # START_MS is read by the scripts that source this
# Start the gateway in the background (GW_PID); set START_MS to the milliseconds
# from process start to the first 200 of /ready on the admin port. Not in a
# command substitution: the gateway must be this shell's child.
start_gateway() {
  local t0 t1 i
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" || \
     curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/live"; then
    die "something already listens on port $PORT or $ADMIN_PORT (choose others with --port)"
  fi
  t0=$(now_ms)
  (gw_exports && exec setsid -w "$BIN") >>"$TMP/gateway.log.tmp" 2>&1 &
  GW_PID=$!
  for ((i = 0; i < 3000; i++)); do
    if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/ready"; then
      t1=$(now_ms)
      START_MS=$((t1 - t0))
      return 0
    fi
    kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited during start-up (see $TMP/gateway.log.tmp)"
    sleep 0.01
  done
  die "the gateway was not ready after 30 s (see $TMP/gateway.log.tmp)"
}

stop_gateway() {
  [[ -n "$GW_PID" ]] || return 0
  if kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"
    local i
    for ((i = 0; i < 400; i++)); do
      kill -0 "$GW_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$GW_PID" 2>/dev/null; then
      log "the gateway did not stop in 40 s; killing it"
      kill -KILL "$GW_PID"
    fi
  fi
  wait "$GW_PID" 2>/dev/null || true
  GW_PID=""
}

# A cluster left running by a run that died: stop it (by its own pid file)
# before the data directory is removed.
stop_leftover_cluster() {
  local pidfile="$DATA/pg/postmaster.pid" pid i
  [[ -f "$pidfile" ]] || return 0
  pid=$(head -1 "$pidfile")
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping the cluster a previous run left running (pid $pid)"
    kill -INT "$pid"
    for ((i = 0; i < 300; i++)); do
      kill -0 "$pid" 2>/dev/null || return 0
      sleep 0.1
    done
    die "the leftover cluster (pid $pid) did not stop"
  fi
}

# The socket directory of the running cluster (line 5 of postmaster.pid): the
# data directory itself unless its path is too long for a socket.
socket_dir() { sed -n 5p "$DATA/pg/postmaster.pid"; }

# psql as the superuser through the socket.
su_psql() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$(socket_dir)" -p 5432 -U postgres -d pgrpc "$@"
}

apply_fixture() {
  su_psql -f "$ROOT/bench/fixture.sql" >>"$TMP/fixture.log.tmp" 2>&1 \
    || die "bench/fixture.sql failed (see $TMP/fixture.log.tmp)"
}

# After the fixture, the gateway reloads its schema cache (DDL event trigger);
# wait until the new function answers.
wait_for_function() {
  local i
  for ((i = 0; i < 500; i++)); do
    if curl -sf -o /dev/null -H 'Content-Type: application/json' -d '{"a":1,"b":2}' \
        "http://127.0.0.1:$PORT/rpc/add_them"; then
      return 0
    fi
    sleep 0.02
  done
  die "POST /rpc/add_them does not answer 200 after the fixture"
}

# The token case's token carries a session id, as every token of the seed
# does, so the gateway's ended-sessions check does its lookup (the fixture ends
# other sessions, so the set is not empty). A live session: not in the set.
BENCH_SID=7e57be4c-0000-4000-8000-000000000001
token() { (gw_exports && exec "$BIN" token --role app_user --ttl 2h --claim "sid=$BENCH_SID"); }
effective_config() { (gw_exports && exec "$BIN" --dump-config); }

# base64url → text (a JWT's payload).
b64url_decode() {
  local s=${1//-/+}
  s=${s//_//}
  while ((${#s} % 4)); do s+="="; done
  printf '%s' "$s" | base64 -d
}

rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# Reset VmHWM to the current RSS (proc(5), clear_refs value 5).
reset_peak() { echo 5 >"/proc/$1/clear_refs"; }

# Wait (up to 15 s) until the cluster has no client transaction in progress.
# When wrk or pgbench stops, work it started goes on: the gateway finishes the
# requests wrk gave up (each runs on its own task), and backends finish their
# statement. With identify at 256 connections that is seconds of bcrypt, which
# would otherwise be charged to the next point.
drain() {
  local i n
  for ((i = 0; i < 150; i++)); do
    n=$(su_psql -Atc "select count(*) from pg_stat_activity where backend_type = 'client backend'
                      and pid <> pg_backend_pid() and state <> 'idle'" 2>/dev/null || echo 0)
    [[ "$n" == 0 ]] && return 0
    sleep 0.1
  done
  log "the cluster was still busy 15 s after the load stopped"
}

# Who runs pgbench: authenticator, like the gateway, when it may look names up
# in api (it can then prepare the call before the role switch); otherwise the
# superuser. Either way the pipeline switches role as the gateway does.
pgbench_user() {
  if [[ $(su_psql -Atc "select has_schema_privilege('authenticator', 'api', 'USAGE')
                        and has_schema_privilege('authenticator', 'auth', 'USAGE')") == t ]]; then
    echo authenticator
  else
    echo postgres
  fi
}

# wrk against the gateway. Args: conns seconds path out_file; BENCH_* as in wrk.lua.
run_wrk() {
  local conns=$1 secs=$2 path=$3 out=$4
  local threads=$WRK_THREADS
  ((conns < threads)) && threads=$conns
  setsid -w wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 5s --latency -s "$ROOT/bench/wrk.lua" \
    "http://127.0.0.1:$PORT$path" >"$out" 2>&1 || true
}

# oha against the gateway, JSON summary. Args: conns seconds path out_file;
# BENCH_BODY and BENCH_TOKEN as for wrk.
run_oha() {
  local conns=$1 secs=$2 path=$3 out=$4
  local args=(--no-tui --output-format json -z "${secs}s" -w -c "$conns" -t 5s -m POST
    -H "Content-Type: application/json" -d "$BENCH_BODY")
  [[ -n "${BENCH_TOKEN:-}" ]] && args+=(-H "Authorization: Bearer $BENCH_TOKEN")
  setsid -w oha "${args[@]}" "http://127.0.0.1:$PORT$path" >"$out" 2>&1 || true
}

# pgbench on the same cluster. Args: script conns seconds out_file [log prefix]
# plus -D definitions in the PGB_DEFS array.
run_pgbench() {
  local script=$1 conns=$2 secs=$3 out=$4 logprefix=${5:-}
  local args=(-n -M prepared -h "$(socket_dir)" -p 5432 -U "${PGB_USER:-postgres}" -c "$conns" -j 2 -T "$secs" -f "$script")
  [[ -n "$logprefix" ]] && args+=(-l --sampling-rate "$PGB_SAMPLING" --log-prefix "$logprefix")
  setsid -w pgbench "${args[@]}" "${PGB_DEFS[@]}" pgrpc >"$out" 2>&1 || true
}

# --- PgBouncer (issue 13): a second gateway, external mode, its request pool
# through the distribution's PgBouncer in transaction mode in front of the
# embedded cluster's socket; same key, so the same token works. ---
PGB_BIN=/usr/sbin/pgbouncer
PGB_PID="" PGB_GW_PID=""

start_pgbouncer_pair() {  # sets PGB_GW_PORT, PGB_GW_PID; needs the embedded gateway up
  local dir="$DATA/pgbouncer" i sock
  PGB_LISTEN=$((PORT + 4)) PGB_GW_PORT=$((PORT + 2))
  sock=$(socket_dir)
  mkdir -p "$dir" && chmod 755 "$dir"
  printf '"authenticator" ""\n' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
pgrpc = host=$sock port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_LISTEN
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
INI
  chmod 644 "$dir"/*
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$PGB_BIN" "$dir/pgbouncer.ini" >>"$TMP/pgbouncer.log.tmp" 2>&1 &
  else
    "$PGB_BIN" "$dir/pgbouncer.ini" >>"$TMP/pgbouncer.log.tmp" 2>&1 &
  fi
  PGB_PID=$!
  (gw_exports && unset PGRPC_DB_DATA_DIR && PGRPC_SERVER_PORT=$PGB_GW_PORT PGRPC_ADMIN_PORT=$((PORT + 3)) \
    PGRPC_DB_URI="postgres://authenticator@127.0.0.1:$PGB_LISTEN/pgrpc?sslmode=disable" \
    PGRPC_DB_LISTEN_URI="host=$sock port=5432 user=authenticator dbname=pgrpc" \
    PGRPC_DB_PREPARED_STATEMENTS=false PGRPC_JWT_SECRET_FILE="$DATA/pg/pgrpc_jwt_secret" \
    exec setsid -w "$BIN") >>"$TMP/gateway-pgbouncer.log.tmp" 2>&1 &
  PGB_GW_PID=$!
  for ((i = 0; i < 3000; i++)); do
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$((PORT + 3))/ready" && return 0
    kill -0 "$PGB_GW_PID" 2>/dev/null || die "the PgBouncer gateway exited (see $TMP/gateway-pgbouncer.log.tmp)"
    sleep 0.01
  done
  die "the PgBouncer gateway was not ready after 30 s (see $TMP/gateway-pgbouncer.log.tmp)"
}

stop_pgbouncer_pair() {
  local pid
  for pid in "$PGB_GW_PID" "$PGB_PID"; do
    [[ -n "$pid" ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    # Its status is the signal's (143): not a failure of ours under set -e.
    wait "$pid" 2>/dev/null || true
  done
  PGB_GW_PID="" PGB_PID=""
  return 0
}
