"""An independent fan-out client for .ci/bench: shares no code with the project's load test,
so the two can check each other. Modelled on ../shared/bench/fanout_client.py.

Opens N viewers, makes K changes GAP seconds apart (the k-th at start + k*GAP, catching up
when late), and measures from the start of each change to every viewer's receipt of it:

  raw URL N K GAP                 the bare websockets reference (raw_ws.py): a change is a
                                  message on one more socket, echoed to every connection
  api BASE_URL SETUP N K GAP      our site: a change is POST /api/events/<id>/bookings of one
                                  seat by one of SETUP's customers (see loadtest/wrk.py
                                  --setup), viewers on /ws/events/<id>/

  idle URL N [M ...]              opens N idle viewers, prints "connected N", waits for a
                                  line on stdin, opens M more, and so on; then keeps them
                                  open until stdin closes (the server's memory per viewer)

Options: --url (api: more server base URLs; viewers and bookings go round-robin),
--procs P (viewers spread over P processes; perf_counter is CLOCK_MONOTONIC on Linux, one
clock for all of them), --pid PID (server processes whose CPU time is summed over the load,
from the first change until the tail ends), --tail S (how long after the last change
deliveries are still waited for: 5).

Runs on uvloop when it is installed (it comes with uvicorn[standard]), as the project's load
test does: both measure the server with clients of the same cost per frame, and this one
measures the bare reference server the same way.

Prints one line: viewers, changes, delivered/expected, lost, p50/p99/max ms, the achieved
change rate, viewers that could not connect (failed_connects, when any: their frames count as
lost), viewers that got a catch-up (sync/reset) frame, booking answers by status,
server CPU seconds and CPU ms per 1,000 delivered frames.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import secrets
import sys
import time
from urllib.parse import urlsplit

import websockets
from websockets.typing import Origin

SOLD = re.compile(rb'id="seat-(\d+)"[^>]*?data-state="sold"')
KIND = re.compile(rb'^<div id="live-version" data-kind="(\w+)"')


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def run(main):
    """Runs the coroutine on uvloop if it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# --- viewers (in this process or in a child) -------------------------------------------


async def run_viewers(mode, urls, count, offset, connected, stop, results):
    latencies: list[float] = []
    catchups = 0
    failed = 0

    async def viewer(i, ready):
        nonlocal catchups, failed
        opened = False
        url = urls[(offset + i) % len(urls)]
        seen: set[int] = set()
        caught_up = False
        try:
            async with websockets.connect(
                url,
                ping_interval=None,
                max_queue=None,
                max_size=None,
                compression=None,
                open_timeout=60,
                origin=Origin(url.replace("ws://", "http://").split("/ws/")[0])
                if mode == "api"
                else None,
            ) as ws:
                opened = True
                ready.release()
                while True:
                    data = await ws.recv(decode=False)
                    now = time.perf_counter()
                    if mode == "raw":
                        t = float(data.split(b'data-t="')[1].split(b'"')[0])
                        latencies.append(now - t)
                        continue
                    kind = KIND.match(data)
                    if kind and kind.group(1) in (b"sync", b"reset") and not caught_up:
                        caught_up = True
                        catchups += 1
                    for raw_id in SOLD.findall(data):
                        seat = int(raw_id)
                        if seat not in seen:
                            seen.add(seat)
                            latencies.append(now)  # made relative in the main process
                            seats_seen.append(seat)
        except (asyncio.CancelledError, Exception):
            pass  # closed, stopped, or a refused handshake: counted below, never waited for
        finally:
            if not opened:
                failed += 1
                ready.release()

    seats_seen: list[int] = []
    ready = asyncio.Semaphore(0)
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(viewer(i, ready)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    for _ in range(count):
        await ready.acquire()
    connected()
    await stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    results(latencies, seats_seen, catchups, failed)


def child(mode, urls, count, offset, conn):
    async def main():
        loop = asyncio.get_running_loop()

        async def stop():
            await loop.run_in_executor(None, conn.recv)

        def results(latencies, seats, catchups, failed):
            conn.send((latencies, seats, catchups, failed))

        await run_viewers(mode, urls, count, offset, lambda: conn.send("ready"), stop, results)

    run(main())


# --- changes ------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.origin = f"http://{parts.netloc}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        async with self.lock:
            for attempt in (1, 2):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                head += f"Content-Length: {len(body)}\r\n\r\n"
                try:
                    self.writer.write(head.encode() + body)
                    status_line = await self.reader.readline()
                    if not status_line:
                        raise ConnectionError("closed")
                    length = 0
                    while (line := await self.reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.decode("latin-1").partition(":")
                        if name.lower() == "content-length":
                            length = int(value)
                    await self.reader.readexactly(length)
                    return int(status_line.split()[1])
                except (ConnectionError, asyncio.IncompleteReadError):
                    self.writer.close()
                    self.writer = None
                    if attempt == 2:
                        return 0
            return 0


async def drive(args):
    urls = args.urls
    if args.mode == "api":
        with open(args.setup) as file:
            setup = json.load(file)
        event_id = setup["event"]
        version = setup["version"]
        ws_urls = [
            u.replace("http://", "ws://").rstrip("/") + f"/ws/events/{event_id}/?v={version}"
            for u in urls
        ]
    else:
        ws_urls = urls
    procs = max(1, args.procs)
    pipes, processes = [], []
    per = [args.viewers // procs + (i < args.viewers % procs) for i in range(procs)]
    ctx = multiprocessing.get_context("spawn")
    for i, count in enumerate(per):
        ours, theirs = ctx.Pipe()
        offset = sum(per[:i])
        p = ctx.Process(target=child, args=(args.mode, ws_urls, count, offset, theirs))
        p.start()
        pipes.append(ours)
        processes.append(p)
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        assert await loop.run_in_executor(None, pipe.recv) == "ready"
    await asyncio.sleep(1.0)

    statuses: dict[int, int] = {}
    sent_at: dict[int, float] = {}
    booking_times: list[float] = []
    cpu_before = cpu_seconds(args.pid)
    t0 = time.perf_counter()
    if args.mode == "raw":
        async with websockets.connect(ws_urls[0], ping_interval=None, max_queue=None) as s:
            for k in range(args.changes):
                await s.send(json.dumps({"seat": k, "t": time.perf_counter()}))
                await asyncio.sleep(max(0.0, t0 + (k + 1) * args.gap - time.perf_counter()))
            sending = time.perf_counter() - t0
            await asyncio.sleep(args.tail)
    else:
        sessions = setup["sessions"]
        seats = setup["seats"]
        conns = [Http(urls[i % len(urls)]) for i in range(len(sessions))]
        in_flight = set()

        async def book(k: int) -> None:
            session = sessions[k % len(sessions)]
            conn = conns[k % len(conns)]
            seat = seats[k]
            headers = {
                "Cookie": session["cookie"],
                "X-CSRFToken": session["token"],
                "Content-Type": "application/json",
                "Origin": conn.origin,
                "Referer": f"{conn.origin}/",
                # As the API's clients send (the load test too): the server stores the key.
                "Idempotency-Key": secrets.token_urlsafe(18),
            }
            sent_at[seat] = time.perf_counter()
            status = await conn.post(
                f"/api/events/{event_id}/bookings", json.dumps({"seats": [seat]}).encode(), headers
            )
            booking_times.append(time.perf_counter() - sent_at[seat])
            statuses[status] = statuses.get(status, 0) + 1

        for k in range(args.changes):
            task = asyncio.create_task(book(k))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            await asyncio.sleep(max(0.0, t0 + (k + 1) * args.gap - time.perf_counter()))
        sending = time.perf_counter() - t0
        if in_flight:
            await asyncio.gather(*in_flight)
        await asyncio.sleep(args.tail)
    cpu = cpu_seconds(args.pid) - cpu_before

    latencies: list[float] = []
    catchups = failed = 0
    for pipe in pipes:
        pipe.send("stop")
    for pipe in pipes:
        got, seats_seen, caught, refused = await loop.run_in_executor(None, pipe.recv)
        catchups += caught
        failed += refused
        if args.mode == "raw":
            latencies.extend(got)
        else:
            latencies.extend(
                at - sent_at[s] for at, s in zip(got, seats_seen, strict=True) if s in sent_at
            )
    for p in processes:
        p.join(10)

    made = args.changes if args.mode == "raw" else statuses.get(201, 0)
    expected = args.viewers * made
    latencies.sort()

    def q(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    line = (
        f"viewers={args.viewers} changes={made} delivered={len(latencies)}/{expected} "
        f"lost={expected - len(latencies)} p50={q(0.5):.1f}ms p99={q(0.99):.1f}ms "
        f"max={q(1):.1f}ms rate={args.changes / sending:.1f}/s"
    )
    if failed:  # viewers that never connected: their deliveries count as lost
        line += f" failed_connects={failed}"
    if args.mode == "api":
        booking_times.sort()
        b50 = booking_times[len(booking_times) // 2] * 1000 if booking_times else float("nan")
        b99 = (
            booking_times[int(0.99 * len(booking_times))] * 1000 if booking_times else float("nan")
        )
        line += (
            f" catchup_viewers={catchups} statuses={dict(sorted(statuses.items()))}"
            f" booking_p50={b50:.1f}ms booking_p99={b99:.1f}ms"
        )
    if args.pid:
        per_k = cpu / max(1, len(latencies)) * 1e6
        line += f" server_cpu={cpu:.2f}s cpu_per_1k_frames={per_k:.1f}ms"
    print(line, flush=True)


async def idle(url: str, counts: list[int]) -> None:
    origin = Origin(url.replace("ws://", "http://").split("/ws/")[0].rstrip("/"))
    loop = asyncio.get_running_loop()
    sockets = []
    for count in counts:
        for start in range(0, count, 100):
            batch = [
                websockets.connect(url, ping_interval=None, compression=None, origin=origin)
                for _ in range(min(100, count - start))
            ]
            sockets.extend(await asyncio.gather(*batch))
        print(f"connected {len(sockets)}", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)


def main() -> None:
    if sys.argv[1:2] == ["idle"]:
        run(idle(sys.argv[2], [int(n) for n in sys.argv[3:]]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", choices=("raw", "api"))
    parser.add_argument("url")
    parser.add_argument("rest", nargs="+")
    parser.add_argument("--url", dest="more", action="append", default=[])
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--pid", type=int, action="append", default=[])
    parser.add_argument("--tail", type=float, default=5.0)
    args = parser.parse_args()
    rest = args.rest
    if args.mode == "api":
        args.setup, rest = rest[0], rest[1:]
    args.viewers, args.changes, args.gap = int(rest[0]), int(rest[1]), float(rest[2])
    args.urls = [args.url, *args.more]
    run(drive(args))


if __name__ == "__main__":
    main()
