#!/usr/bin/env python3
"""bench/soak.py: the mixed traffic of bench/soak (run that, not this).

A fixed request rate, split over writer threads on keep-alive connections:
cheap calls (anonymous and with a token), logins right and wrong, fresh
registrations and token refreshes. Every answer is checked against what that
kind of request must get (a wrong login must get 401); anything else, or no
answer, is an error. Per minute: throughput, p50/p99, errors, the gateway's
resident memory and what its verified-token cache holds (from /metrics on the
admin port). Standard library only.
"""

import argparse
import http.client
import json
import os
import random
import threading
import time

# (kind, weight)
MIX = [("cheap", 55), ("cheap_token", 10), ("login", 12), ("login_wrong", 10),
       ("register", 8), ("refresh", 5)]
EXPECTED = {"cheap": 200, "cheap_token": 200, "login": 200, "login_wrong": 401,
            "register": 200, "refresh": 200}


def invite(n):
    return "00000000-0000-4000-8000-%012x" % n


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next_invite = 0
        self.next_wrong = 0
        self.tokens = []  # session tokens for refresh and token calls
        self.minute = {}  # minute -> {"lat": [...], "errors": n, "kinds": {...}}
        self.error_samples = []
        self.t0 = None

    def counter(self, name):
        with self.lock:
            v = getattr(self, name) + 1
            setattr(self, name, v)
            return v

    def record(self, kind, started, latency, ok, detail):
        m = int((started - self.t0) // 60)
        with self.lock:
            slot = self.minute.setdefault(m, {"lat": [], "errors": 0, "kinds": {}})
            slot["lat"].append(latency)
            slot["kinds"][kind] = slot["kinds"].get(kind, 0) + 1
            if not ok:
                slot["errors"] += 1
                if len(self.error_samples) < 20:
                    self.error_samples.append("minute %d, %s: %s" % (m + 1, kind, detail))


def jwt_cache(admin_port):
    """(entries, bytes) of the verified-token cache, from /metrics; (None, None)
    when the admin port does not answer."""
    found = {}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            name, _, value = line.partition(" ")
            if name in ("pgrpc_jwt_cache_entries", "pgrpc_jwt_cache_bytes"):
                found[name] = float(value)
        conn.close()
    except (OSError, http.client.HTTPException, ValueError):
        pass
    return found.get("pgrpc_jwt_cache_entries"), found.get("pgrpc_jwt_cache_bytes")


def request(conn_box, port, method, path, body, token=None):
    if conn_box[0] is None:
        conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        conn_box[0].request(method, path, body, headers)
        res = conn_box[0].getresponse()
        data = res.read()
        return res.status, data
    except (OSError, http.client.HTTPException) as e:
        conn_box[0].close()
        conn_box[0] = None
        return 0, type(e).__name__.encode()


def user(n):
    return "soak%04d" % n, "soak-password-%04d" % n


def one(soak, conn_box, kind):
    a = soak.args
    token = None
    if kind in ("cheap", "cheap_token"):
        path = "/rpc/soak_add"
        body = json.dumps({"a": random.randint(0, 1000), "b": 2})
        if kind == "cheap_token":
            token = random.choice(soak.tokens)
    elif kind == "login":
        name, password = user(random.randint(1, a.users))
        path, body = "/auth/access_token/", json.dumps({"username": name, "password": password})
    elif kind == "login_wrong":
        # Unknown names, each once: a wrong password for a real user would
        # lock it (429) after a few tries.
        path = "/auth/access_token/"
        body = json.dumps({"username": "nobody%d" % soak.counter("next_wrong"),
                           "password": "wrong-password"})
    elif kind == "register":
        n = soak.counter("next_invite")
        path = "/rpc/register"
        body = json.dumps({"username": "s%s_%d" % (a.tag, n), "password": "soak-register-%d" % n,
                           "email": "s%s_%d@example.com" % (a.tag, n), "invite_code": invite(n)})
    else:  # refresh
        path = "/auth/refresh_token/"
        slot = random.randrange(len(soak.tokens))
        body = json.dumps({"token": soak.tokens[slot]})
    started = time.monotonic()
    status, data = request(conn_box, a.port, "POST", path, body, token)
    latency = time.monotonic() - started
    ok = status == EXPECTED[kind]
    if kind == "refresh" and ok:
        # Refresh rotates (issue 15): the old token is retired, and presenting
        # it again after the grace interval ends the session. A client keeps
        # the new one, as this one does.
        soak.tokens[slot] = json.loads(data)["token"]
    soak.record(kind, started, latency, ok, "%d %s" % (status, data[:160].decode("utf-8", "replace")))


def writer(soak, interval, seed):
    rnd = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    conn_box = [None]
    next_at = time.monotonic() + rnd.random() * interval
    while not soak.stop.is_set():
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        one(soak, conn_box, rnd.choice(kinds))
        next_at += interval
        if next_at < time.monotonic() - 1:
            next_at = time.monotonic()  # fell behind by more than a second: do not burst


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--admin-port", type=int, default=0)
    p.add_argument("--minutes", type=int, default=10)
    p.add_argument("--rate", type=float, default=400)
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--tag", default="r")
    p.add_argument("--out", required=True)
    p.add_argument("--note", default="")
    p.add_argument("--machine", default="")
    p.add_argument("--binary", default="the pgrpc binary")
    args = p.parse_args()
    soak = Soak(args)

    # Session tokens for refreshes and token calls: log a few users in.
    conn_box = [None]
    for n in range(1, 21):
        name, password = user(n)
        status, data = request(conn_box, args.port, "POST", "/auth/access_token/",
                               json.dumps({"username": name, "password": password}))
        if status != 200:
            raise SystemExit("login for the tokens failed: %d %s" % (status, data[:200]))
        soak.tokens.append(json.loads(data)["access_token"])

    rss, load, cache = {}, {}, {}
    soak.t0 = time.monotonic()
    interval = args.writers / args.rate
    threads = [threading.Thread(target=writer, args=(soak, interval, i)) for i in range(args.writers)]
    for t in threads:
        t.start()
    for m in range(args.minutes):
        end = soak.t0 + 60 * (m + 1)
        while time.monotonic() < end:
            time.sleep(min(1, max(0, end - time.monotonic())))
        rss[m] = rss_kb(args.pid)
        load[m] = os.getloadavg()[0]
        cache[m] = jwt_cache(args.admin_port) if args.admin_port else (None, None)
        with soak.lock:
            slot = soak.minute.get(m, {"lat": [], "errors": 0})
            n, errors, p99 = len(slot["lat"]), slot["errors"], percentile(slot["lat"], 0.99)
        print("[soak] minute %d: %d requests, %.0f/s, p99 %.1f ms, %d errors, RSS %.1f MB, "
              "JWT cache %s, load %.1f" % (m + 1, n, n / 60, p99 * 1000, errors, rss[m] / 1024,
                                           cache_text(cache[m]), load[m]), flush=True)
    soak.stop.set()
    for t in threads:
        t.join()
    report(soak, rss, load, cache)


def cache_text(reading):
    entries, size = reading
    if entries is None or size is None:
        return "?"
    return "%.0f KB (%d)" % (size / 1024, entries)


def report(soak, rss, load, cache):
    a = soak.args
    rows, p99s = [], {}
    total_errors = 0
    for m in range(a.minutes):
        slot = soak.minute.get(m, {"lat": [], "errors": 0})
        lat = slot["lat"]
        p99s[m] = percentile(lat, 0.99)
        total_errors += slot["errors"]
        rows.append("| %d | %d | %.0f | %.1f | %.1f | %d | %.1f | %s | %.1f |" % (
            m + 1, len(lat), len(lat) / 60, percentile(lat, 0.5) * 1000, p99s[m] * 1000,
            slot["errors"], rss.get(m, 0) / 1024, cache_text(cache.get(m, (None, None))),
            load.get(m, 0)))
    last = a.minutes - 1
    base = 1 if a.minutes > 1 else 0  # minute 2 is the baseline (minute 1 warms up)
    growth = (rss[last] - rss[base]) / rss[base] * 100 if rss.get(base) else float("nan")
    drift = p99s[last] / p99s[base] if p99s.get(base) else float("nan")
    verdict = lambda ok: "PASS" if ok else "FAIL"
    lines = [
        "# bench/soak: mixed traffic over time",
        "",
        "`bench/soak --minutes %d` (issue 12): %g requests/s from %d keep-alive connections "
        "against %s on its embedded cluster: cheap calls (%d %% anonymous, %d %% "
        "with a token), logins right (%d %%) and wrong (%d %%, unknown users: 401 expected), "
        "registrations with fresh invites (%d %%) and token refreshes (%d %%). bcrypt cost 4. "
        "An error is any answer other than the expected status, or none. Latency is measured "
        "per request by the client (Python, so it includes the client's own overhead). Load is "
        "the machine's 1-minute load average at the end of the minute (2 cores: above 2, "
        "something else competes for them). JWT cache: what the verified-token cache "
        "accounts (pgrpc_jwt_cache_bytes, and its entries) at the end of the minute." % (
            a.minutes, a.rate, a.writers, a.binary, *[w for _, w in MIX]),
        "",
    ]
    if a.note:
        lines += [a.note, ""]
    lines += [
        "| Minute | Requests | req/s | p50 ms | p99 ms | Errors | RSS MB | JWT cache | Load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ] + rows + [
        "",
        "Targets of the issue (minute %d against minute %d):" % (last + 1, base + 1),
        "",
        "- zero errors: %d — **%s**" % (total_errors, verdict(total_errors == 0)),
        "- RSS growth under 10 %%: %+.1f %% — **%s**" % (growth, verdict(growth < 10)),
        "- p99 within 2 × of minute %d: %.2f × — **%s**" % (base + 1, drift, verdict(drift <= 2)),
        "",
    ]
    if soak.error_samples:
        lines += ["First errors:", "", "```"] + soak.error_samples + ["```", ""]
    if a.machine:
        lines += [a.machine, ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    raise SystemExit(0 if total_errors == 0 and growth < 10 and drift <= 2 else 1)


if __name__ == "__main__":
    main()
