#!/usr/bin/env python3
"""Slow clients for bench/slowloris: hold N connections open to the gateway.

Half of them are "idle": a request line and one header, then a header byte a
second that never ends the head (closed by server.head_timeout). The other
half "trickle": a complete head announcing a 1 MB body, then one body byte a
second (closed by server.body_timeout with 408). Whenever the gateway closes
one, it is opened again at once, so N stay open for as long as this runs.

Prints "ready" once all N are connected, and on SIGTERM/SIGINT one line:
SLOWLORIS opened=… closed_by_server=… answered_408=… failed_connects=…
Standard library only.
"""

import argparse
import asyncio
import signal

stats = {"opened": 0, "closed_by_server": 0, "answered_408": 0, "failed_connects": 0}


async def one(host, port, kind, interval, stop, connected):
    first = True
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["failed_connects"] += 1
            await asyncio.sleep(0.1)
            continue
        stats["opened"] += 1
        if first:
            connected()
            first = False
        try:
            if kind == "idle":
                writer.write(b"POST /rpc/add_them HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            else:
                writer.write(
                    b"POST /rpc/add_them HTTP/1.1\r\nHost: bench\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
                )
            await writer.drain()
            while not stop.is_set():
                # Wait up to `interval` for the server's answer (or close);
                # meanwhile send one more byte.
                try:
                    data = await asyncio.wait_for(reader.read(4096), interval)
                except asyncio.TimeoutError:
                    writer.write(b"a" if kind == "idle" else b" ")
                    await writer.drain()
                    continue
                if data.startswith(b"HTTP/1.1 408"):
                    stats["answered_408"] += 1
                if not data:
                    stats["closed_by_server"] += 1
                    break
        except (ConnectionError, OSError):
            stats["closed_by_server"] += 1
        finally:
            writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pending = args.conns

    def connected():
        nonlocal pending
        pending -= 1
        if pending == 0:
            print("ready", flush=True)

    tasks = []
    for i in range(args.conns):
        kind = "idle" if i % 2 == 0 else "trickle"
        tasks.append(asyncio.create_task(one(args.host, args.port, kind, args.interval, stop, connected)))
        if i % 100 == 99:
            await asyncio.sleep(0.01)  # do not flood the listen queue at once
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("SLOWLORIS " + " ".join(f"{k}={v}" for k, v in stats.items()), flush=True)


asyncio.run(main())
