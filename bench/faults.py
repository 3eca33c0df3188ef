#!/usr/bin/env python3
"""bench/faults.py: the load and the faults of bench/faults (run that, not this).

Registers fresh users through POST /rpc/register at a steady rate while
PostgreSQL is restarted twice, random backends are killed with SIGKILL and the
pool is made to run dry; then compares every answer with what the database
holds. Standard library only.
"""

import argparse
import collections
import http.client
import json
import os
import random
import subprocess
import threading
import time

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
UNKNOWN = "PGRST050"


def invite(n):
    """The code of invite n, as bench/faults.sql creates it."""
    return "00000000-0000-4000-8000-%012x" % n


class Run:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.next = 0
        self.answers = []  # (username, status, code)
        self.events = []  # (seconds since start, what)
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def take(self):
        with self.lock:
            self.next += 1
            return self.next

    def event(self, what):
        t = time.monotonic() - self.t0
        with self.lock:
            self.events.append((t, what))
        print("[faults %5.1fs] %s" % (t, what), flush=True)

    # PostgreSQL as the superuser, through the socket.
    def psql(self, sql):
        out = subprocess.run(
            ["psql", "-X", "-Atq", "-h", self.args.socket, "-p", "5432", "-U", "postgres",
             "-d", "pgrpc", "-c", sql],
            capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("psql: " + out.stderr.strip())
        return out.stdout

    def as_postgres(self, argv):
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def register(conn_box, port, n, tag):
    """One registration: (status, code); status 0 when no answer came."""
    username = "f%s_%d" % (tag, n)
    body = json.dumps({
        "username": username,
        "password": "faults-password-%d" % n,
        "email": "%s@example.com" % username,
        "invite_code": invite(n),
    })
    # Never retried: a second attempt of a registration that did commit would
    # be refused, and the refusal would look like a phantom write.
    if conn_box[0] is None:
        conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn = conn_box[0]
    try:
        conn.request("POST", "/rpc/register", body, {"Content-Type": "application/json"})
        res = conn.getresponse()
        data = res.read()
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        conn_box[0] = None
        return username, 0, type(e).__name__
    code = ""
    if res.status != 200:
        try:
            code = json.loads(data).get("code", "")
        except ValueError:
            code = "not-json"
    if res.getheader("Connection", "").lower() == "close":
        conn.close()
        conn_box[0] = None
    return username, res.status, code


def writer(run, interval):
    conn_box = [None]
    next_at = time.monotonic()
    while not run.stop.is_set():
        n = run.take()
        if n > run.args.invites:
            break
        answer = register(conn_box, run.args.port, n, run.args.tag)
        with run.lock:
            run.answers.append(answer)
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()


def hold(port, seconds):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 30)
    try:
        conn.request("POST", "/rpc/faults_hold", json.dumps({"seconds": seconds}),
                     {"Content-Type": "application/json"})
        conn.getresponse().read()
    except OSError:
        pass
    finally:
        conn.close()


def restart(run):
    run.event("restart PostgreSQL (pg_ctl restart -m fast)")
    out = run.as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", run.args.data, "restart",
                           "-m", "fast", "-w", "-t", "60", "-l",
                           os.path.join(run.args.data, "restart.log")])
    run.event("restarted (pg_ctl exit %d)" % out.returncode)


def kill_backend(run):
    """SIGKILL a backend running one of the gateway's transactions (an idle
    one only when none is found within a few seconds); PostgreSQL then ends
    every other backend and recovers."""
    deadline = time.monotonic() + 10
    pid = None
    while pid is None and time.monotonic() < deadline:
        late = time.monotonic() > deadline - 5
        try:
            pids = run.psql("select pid from pg_stat_activity where backend_type = 'client backend'"
                            " and usename = 'authenticator' and pid <> pg_backend_pid()"
                            + ("" if late else " and state = 'active' and wait_event is distinct from 'PgSleep'")
                            + " order by random() limit 1").split()
        except RuntimeError:
            pids = []  # still recovering from the previous fault
        if pids:
            pid = int(pids[0])
        else:
            time.sleep(0.02)
    if pid is None:
        run.event("no backend to kill")
        return
    os.kill(pid, 9)
    run.event("SIGKILL backend %d (PostgreSQL then restarts every backend)" % pid)


def dry_pool(run):
    holders = 2 * run.args.pool
    run.event("pool runs dry: %d calls hold a connection for %.0f s" % (holders, run.args.hold))
    threads = [threading.Thread(target=hold, args=(run.args.port, run.args.hold))
               for _ in range(holders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.event("pool free again")


def wait_ready(run, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", run.args.admin_port, timeout=2)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def faults(run):
    """The schedule, spread over the run: restart, kills, a dry pool, restart, a kill."""
    d = run.args.duration
    plan = [
        (0.12, restart),
        (0.27, kill_backend),
        (0.37, kill_backend),
        (0.47, dry_pool),
        (0.67, restart),
        (0.82, kill_backend),
    ]
    for share, action in plan:
        at = run.t0 + share * d
        while time.monotonic() < at:
            if run.stop.wait(min(0.1, at - time.monotonic())):
                return
        try:
            action(run)
        except Exception as e:  # a failed fault is reported, not fatal
            run.event("fault %s failed: %s" % (action.__name__, e))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--rate", type=float, default=200, help="registrations per second, in all")
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--invites", type=int, required=True)
    p.add_argument("--pool", type=int, default=10)
    p.add_argument("--hold", type=float, default=4)
    p.add_argument("--tag", default="r")
    p.add_argument("--out", required=True)
    p.add_argument("--machine", default="")
    p.add_argument("--binary", default="the pgrpc binary")
    args = p.parse_args()

    run = Run(args)
    interval = args.writers / args.rate
    writers = [threading.Thread(target=writer, args=(run, interval)) for _ in range(args.writers)]
    chaos = threading.Thread(target=faults, args=(run,))
    run.event("load starts: %g registrations/s from %d writers" % (args.rate, args.writers))
    for t in writers:
        t.start()
    chaos.start()
    time.sleep(args.duration)
    run.stop.set()
    for t in writers:
        t.join()
    chaos.join()
    run.event("load stopped; %d registrations answered" % len(run.answers))
    if not wait_ready(run):
        raise SystemExit("the gateway is not ready after the run")

    existing = set(run.psql("select username from auth.users where username like 'f%s\\_%%'"
                            % args.tag).split())
    # Every use of an invite is exactly one user: the invites say the same.
    used = int(run.psql("select count(*) from auth.invites where uses > 0 and created_by = 'bench/faults'"))

    by = collections.Counter()
    codes = collections.Counter()
    for username, status, code in run.answers:
        exists = username in existing
        if status == 200:
            kind = "200"
        elif code == UNKNOWN:
            kind = "unknown"
        elif status == 0:
            kind = "no answer"
        else:
            kind = "error"
            codes["%d %s" % (status, code)] += 1
        by[(kind, exists)] += 1

    lost = by[("200", False)]
    phantom = by[("error", True)]
    report(run, by, codes, lost, phantom, used, len(existing))
    raise SystemExit(1 if lost or phantom or by[("no answer", True)] else 0)


def report(run, by, codes, lost, phantom, used, existing):
    a = run.args
    total = len(run.answers)
    lines = [
        "# bench/faults: no lost and no phantom writes",
        "",
        "`bench/faults` (issue 12): %d `register` calls (fresh invite and username each, "
        "%g/s from %d writers, %.0f s) against %s on its embedded cluster "
        "(`db.pool` %d, `db.pool_timeout` 1 s) while PostgreSQL is restarted twice, backends "
        "are killed with SIGKILL and the pool runs dry. Then every answer is checked against "
        "`auth.users`." % (total, a.rate, a.writers, a.duration, a.binary, a.pool),
        "",
        "| Answer | Count | User exists | Must |",
        "|---|---|---|---|",
        "| 200 | %d | %d | all exist |" % (by[("200", True)] + by[("200", False)], by[("200", True)]),
        "| error (not `PGRST050`) | %d | %d | none exist |" % (by[("error", True)] + by[("error", False)], by[("error", True)]),
        "| 503 `PGRST050` (outcome unknown) | %d | %d | either |" % (by[("unknown", True)] + by[("unknown", False)], by[("unknown", True)]),
        "| no answer at all | %d | %d | none (the gateway always answers) |" % (by[("no answer", True)] + by[("no answer", False)], by[("no answer", True)]),
        "",
        "- **Lost writes** (answered 200, not there): **%d**." % lost,
        "- **Phantom writes** (answered with a plain error, there anyway): **%d**." % phantom,
        "- Outcome unknown and committed: %d of %d." % (by[("unknown", True)], by[("unknown", True)] + by[("unknown", False)]),
        "- Users in the database from this run: %d; invites used: %d (each use is one user)." % (existing, used),
        "",
        "Errors by status and code:",
        "",
        "| Status, code | Count |",
        "|---|---|",
    ]
    for key, n in sorted(codes.items()):
        lines.append("| %s | %d |" % (key, n))
    lines += ["", "Timeline:", "", "```"]
    for t, what in run.events:
        lines.append("%6.1f s  %s" % (t, what))
    lines += ["```", ""]
    if a.machine:
        lines += [a.machine, ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
