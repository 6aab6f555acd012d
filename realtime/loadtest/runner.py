"""The run: viewers connect, customers rush/browse/trickle, then everything is checked.

One event loop drives every viewer and customer (no thread per viewer). Customers use the
JSON API the seat page's own actions reach; viewers use the page's WebSocket.
"""

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .http import HttpError, Session, log_in, sign_up
from .procmem import MemoryWatch, pids_listening_on
from .stats import ChangeLog, Outcomes, Timeline, monotonic, percentile
from .viewer import Viewer

MODES = ("rush", "random", "steady")
# Viewers open their sockets this many at a time (a browser crowd arrives over seconds, and
# a burst of thousands of handshakes overflows the listen backlog).
CONNECT_BATCH = 100
MAX_BUSY_RETRIES = 20


@dataclass
class Config:
    urls: list[str]
    event_id: int
    viewers: int = 100
    customers: int = 20
    mode: str = "rush"
    rate: float = 20.0
    duration: float = 30.0
    bookings: int | None = None
    hot: int = 20
    group: int = 2
    settle: float = 15.0
    open_timeout: float = 20.0
    deflate: bool = False
    quiet: bool = False
    server_pids: list[int] = field(default_factory=list)
    # Each customer: ("cookies", {...}) ready-made, or ("login"|"signup", (username, password)).
    customer_logins: list[tuple[str, object]] = field(default_factory=list)
    seed: int | None = None


class LoadTestError(Exception):
    """The run could not start (server unreachable, event unknown, log-ins refused)."""


def best_seats(seats: list[dict], count: int) -> list[int]:
    """The `count` seats everyone wants: first section, front rows, middle of the row."""
    section_order: dict[str, int] = {}
    row_order: dict[tuple[str, str], int] = {}
    row_width: Counter = Counter()
    for seat in sorted(seats, key=lambda s: s["id"]):
        section_order.setdefault(seat["section"], len(section_order))
        row_order.setdefault((seat["section"], seat["row"]), len(row_order))
        row_width[(seat["section"], seat["row"])] = max(
            row_width[(seat["section"], seat["row"])], seat["number"]
        )

    def score(seat: dict) -> tuple:
        key = (seat["section"], seat["row"])
        return (
            section_order[seat["section"]],
            row_order[key],
            abs(seat["number"] - (row_width[key] + 1) / 2),
            seat["id"],
        )

    available = [s for s in seats if s["state"] == "available"]
    return [s["id"] for s in sorted(available, key=score)[:count]]


class Customer:
    def __init__(self, number: int, session: Session, run: "Run") -> None:
        self.number = number
        self.session = session
        self.run = run
        self.done = False

    async def call(self, kind: str, method: str, path: str, body: dict) -> tuple[str, dict, float]:
        """Sends one hold or booking request and files its outcome. Returns (outcome, JSON
        answer, seconds to wait before retrying when busy)."""
        outcomes = self.run.holds if kind == "hold" else self.run.bookings
        started = monotonic()
        try:
            response = await self.session.request(method, path, json_body=body)
        except HttpError as exc:
            outcomes.error += 1
            outcomes.error_kinds["no answer: " + str(exc).split(": ", 1)[-1][:60]] += 1
            if kind == "booking":
                self.run.timeline.booking(at=started, status="error", latency=0)
            return "error", {}, 0.2
        latency = monotonic() - started
        data = response.json()
        retry_after = 0.0
        if response.status == 201:
            outcome = "ok"
            outcomes.ok += 1
            outcomes.latencies.append(latency)
            seats = [s["id"] if isinstance(s, dict) else s for s in data.get("seats", [])]
            if kind == "hold":
                self.run.changes.made(
                    seat_ids=body.get("seats", seats), state="held", request_started=started
                )
            else:
                self.run.changes.made(seat_ids=seats, state="sold", request_started=started)
                self.run.booked.append(seats)
                self.run.taken.update(seats)
        elif response.status == 409:
            outcome = "conflict"
            outcomes.conflict += 1
        elif response.status == 503 and data.get("code") == "busy":
            outcome = "busy"
            outcomes.busy += 1
            try:
                retry_after = min(float(response.headers.get("retry-after", "0.1")), 0.5)
            except ValueError:
                retry_after = 0.1
        else:
            outcome = "error"
            outcomes.error += 1
            outcomes.error_kinds[f"{response.status} {data.get('code', '')}".strip()] += 1
            if response.status >= 500:
                self.run.server_errors += 1
        if kind == "booking":
            self.run.timeline.booking(at=started, status=outcome, latency=latency)
        return outcome, data, retry_after

    async def hold(self, seat_ids: list[int]):
        return await self.call(
            "hold", "POST", f"/api/events/{self.run.config.event_id}/holds", {"seats": seat_ids}
        )

    async def book(self, *, seat_ids: list[int] | None = None, hold_id: int | None = None):
        body = {"hold": hold_id} if hold_id is not None else {"seats": seat_ids}
        return await self.call(
            "booking", "POST", f"/api/events/{self.run.config.event_id}/bookings", body
        )

    async def book_until_answered(self, **what) -> tuple[str, dict]:
        """Books, retrying while the server says it is busy (as the page tells people to)."""
        for _ in range(MAX_BUSY_RETRIES):
            outcome, data, wait = await self.book(**what)
            if outcome != "busy":
                return outcome, data
            await asyncio.sleep(wait)
        return "busy", {}

    async def hold_then_book(self, wanted: list[int]) -> str:
        """Holds the seats, then books the hold. Returns the outcome that ended the attempt."""
        outcome, data, wait = await self.hold(wanted)
        if outcome == "ok":
            self.run.taken.update(wanted)
            outcome, data = await self.book_until_answered(hold_id=data.get("hold"))
            return outcome
        if outcome == "conflict":
            if data.get("code") in ("limit_exceeded", "sale_not_open"):
                self.done = True
            self.run.taken.update(data.get("seats") or wanted)
        elif outcome == "busy":
            await asyncio.sleep(wait)
        elif outcome == "error":
            await asyncio.sleep(wait or 0.1)
        return outcome


class Run:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.holds = Outcomes()
        self.bookings = Outcomes()
        self.changes = ChangeLog()
        self.booked: list[list[int]] = []
        self.taken: set[int] = set()
        self.server_errors = 0
        self.stop = asyncio.Event()
        self.viewers: list[Viewer] = []
        self.customers: list[Customer] = []
        self.missed_ticks = 0
        self.load_started = 0.0
        self.load_ended = 0.0
        self.timeline = Timeline(monotonic())
        self.memory = MemoryWatch([])
        self.notes: list[str] = []

    # --- output ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if not self.config.quiet:
            print(text, file=sys.stderr, flush=True)

    def progress_line(self, now: float) -> str:
        connected = sum(1 for v in self.viewers if v.ws is not None)
        elapsed = now - self.load_started if self.load_started else 0.0
        rate = self.bookings.ok / elapsed if elapsed > 0 else 0.0
        recent = sorted(self.timeline.recent_booking_latencies(5, now))
        p99 = percentile(recent, 0.99)
        p99_text = f"{p99 * 1000:.0f}ms" if p99 is not None else "-"
        return (
            f"[{elapsed:6.1f}s] viewers {connected}/{len(self.viewers)} | bookings "
            f"{self.bookings.ok} ({rate:.1f}/s) | conflicts "
            f"{self.bookings.conflict + self.holds.conflict} | busy "
            f"{self.bookings.busy + self.holds.busy} | errors "
            f"{self.bookings.error + self.holds.error} | booking p99 (5s) {p99_text}"
        )

    async def show_progress(self) -> None:
        tty = sys.stderr.isatty()
        last_line = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = monotonic()
            if self.config.quiet:
                continue
            if tty:
                print("\r" + self.progress_line(now), end="", file=sys.stderr, flush=True)
            elif now - last_line >= 5:
                last_line = now
                print(self.progress_line(now), file=sys.stderr, flush=True)

    async def watch_viewers(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = monotonic()
            for viewer in self.viewers:
                viewer.check(now)

    async def watch_memory(self) -> None:
        while True:
            self.memory.sample()
            await asyncio.sleep(1.0)

    # --- setup -------------------------------------------------------------------------

    async def fetch_map(self, session: Session) -> tuple[int, dict[int, str], list[dict]]:
        path = f"/api/events/{self.config.event_id}/seats"
        try:
            response = await session.request("GET", path)
        except HttpError as exc:
            raise LoadTestError(f"Cannot reach {session.base_url}: {exc}") from exc
        if response.status != 200:
            raise LoadTestError(f"GET {path} answered {response.status}: {response.body[:200]!r}")
        data = response.json()
        seats = data.get("seats", [])
        return int(data["version"]), {s["id"]: s["state"] for s in seats}, seats

    async def open_customers(self) -> None:
        urls = self.config.urls
        # Logging in hashes a password (the server's slow path); and a burst of first requests
        # would open as many database connections at once.
        gate = asyncio.Semaphore(4)

        async def open_one(number: int, how: str, what) -> Customer:
            session = Session(urls[number % len(urls)])
            if how == "cookies":
                session.cookies.update(what)
            else:
                username, password = what
                async with gate:
                    try:
                        if how == "signup":
                            ok = await sign_up(session, username=username, password=password)
                        else:
                            ok = await log_in(session, username=username, password=password)
                    except HttpError as exc:
                        raise LoadTestError(f"Log-in of {username} failed: {exc}") from exc
                if not ok:
                    raise LoadTestError(f"Could not {how.replace('login', 'log in')} {username}.")
            async with gate:
                await self.check_logged_in(session)
            return Customer(number, session, self)

        self.customers = list(
            await asyncio.gather(
                *(
                    open_one(n, how, what)
                    for n, (how, what) in enumerate(self.config.customer_logins)
                )
            )
        )

    async def check_logged_in(self, session: Session) -> None:
        """Releasing hold 0 is a harmless request that only a logged-in customer with a good
        CSRF token gets a 404 for (a stranger gets 401, a bad token 403)."""
        try:
            response = await session.request("DELETE", "/api/holds/0")
        except HttpError as exc:
            raise LoadTestError(f"Cannot reach {session.base_url}: {exc}") from exc
        if response.status >= 500:
            raise LoadTestError(
                f"{session.base_url} answered {response.status} to a customer's first request "
                "(see the server's log)."
            )
        if response.status != 404:
            raise LoadTestError(
                f"A customer is not logged in on {session.base_url} (DELETE /api/holds/0 "
                f"answered {response.status} {response.json().get('code', '')}). Sessions made "
                "here need the server's DATABASE_URL and SECRET_KEY; otherwise use "
                "--users-file or --login signup."
            )

    async def open_viewers(self, baseline: dict[int, str], version: int) -> list[asyncio.Task]:
        urls = self.config.urls
        self.viewers = [
            Viewer(
                number=n,
                base_url=urls[n % len(urls)],
                event_id=self.config.event_id,
                baseline=baseline,
                base_version=version,
                changes=self.changes,
                deflate=self.config.deflate,
            )
            for n in range(self.config.viewers)
        ]
        tasks = []
        for start in range(0, len(self.viewers), CONNECT_BATCH):
            batch = self.viewers[start : start + CONNECT_BATCH]
            tasks.extend(
                asyncio.create_task(v.run(open_timeout=self.config.open_timeout)) for v in batch
            )
            waits = [asyncio.create_task(v.connected.wait()) for v in batch]
            _, pending = await asyncio.wait(waits, timeout=self.config.open_timeout)
            for waiter in pending:
                waiter.cancel()
            if not self.config.quiet:
                connected = sum(1 for v in self.viewers if v.ws is not None)
                self.say(f"viewers connected: {connected}/{len(self.viewers)}")
        return tasks

    # --- load --------------------------------------------------------------------------

    def enough(self) -> bool:
        target = self.config.bookings
        return self.stop.is_set() or (target is not None and self.bookings.ok >= target)

    def pick_free(self, pool: list[int], count: int) -> list[int]:
        """Up to `count` random seats from `pool` not known to be taken (pool is pruned)."""
        chosen: list[int] = []
        while pool and len(chosen) < count:
            index = self.random.randrange(len(pool))
            seat = pool[index]
            pool[index] = pool[-1]
            pool.pop()
            if seat not in self.taken:
                chosen.append(seat)
        return chosen

    async def rush(self, hot: list[int], start: asyncio.Event) -> None:
        async def customer_loop(customer: Customer) -> None:
            await start.wait()
            errors = 0
            while not self.enough() and not customer.done:
                wanted_from = [s for s in hot if s not in self.taken]
                if not wanted_from:
                    return
                wanted = self.random.sample(wanted_from, min(self.config.group, len(wanted_from)))
                outcome = await customer.hold_then_book(wanted)
                errors = errors + 1 if outcome == "error" else 0
                if errors >= 20:
                    return

        loops = [asyncio.create_task(customer_loop(c)) for c in self.customers]
        start.set()
        await asyncio.gather(*loops)

    async def random_load(self, pool: list[int]) -> None:
        async def customer_loop(customer: Customer) -> None:
            errors = 0
            while not self.enough() and not customer.done:
                wanted = self.pick_free(pool, self.random.randint(1, self.config.group))
                if not wanted:
                    return
                if self.random.random() < 0.5:
                    outcome = await customer.hold_then_book(wanted)
                else:
                    outcome, data = await customer.book_until_answered(seat_ids=wanted)
                    if outcome == "conflict":
                        self.taken.update(data.get("seats") or wanted)
                        customer.done = data.get("code") in ("limit_exceeded", "sale_not_open")
                errors = errors + 1 if outcome == "error" else 0
                if errors >= 20:
                    return

        await asyncio.gather(*(customer_loop(c) for c in self.customers))

    async def steady(self, pool: list[int]) -> None:
        """One single-seat booking every 1/rate seconds, each by an idle customer; a tick
        with every customer still waiting for an answer is counted as missed."""
        idle: asyncio.Queue[Customer] = asyncio.Queue()
        for customer in self.customers:
            idle.put_nowait(customer)
        in_flight: set[asyncio.Task] = set()

        async def change(customer: Customer, seat: int) -> None:
            try:
                outcome, data = await customer.book_until_answered(seat_ids=[seat])
                if outcome == "conflict":
                    self.taken.update(data.get("seats") or [seat])
            finally:
                idle.put_nowait(customer)

        interval = 1.0 / self.config.rate
        start = monotonic()
        tick = 0
        while not self.enough():
            try:
                customer = idle.get_nowait()
            except asyncio.QueueEmpty:
                self.missed_ticks += 1
            else:
                seats = self.pick_free(pool, 1)
                if not seats:
                    idle.put_nowait(customer)
                    self.notes.append("steady: every seat was sold before the end")
                    break
                self.taken.add(seats[0])
                task = asyncio.create_task(change(customer, seats[0]))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * interval - monotonic()))
        if in_flight:
            await asyncio.gather(*in_flight)

    async def drive(self, hot: list[int], all_seats: list[int]) -> None:
        mode = self.config.mode
        if mode == "rush":
            await self.rush(hot, asyncio.Event())
        elif mode == "random":
            await self.random_load(list(all_seats))
        else:
            await self.steady(list(all_seats))

    # --- settling and checking ---------------------------------------------------------

    async def settle(self, api: Session) -> tuple[int, dict[int, str]]:
        """Waits until every connected viewer has reached the server's version (asking
        laggards to resync, as a heartbeat would), then returns the server's final map."""
        deadline = monotonic() + self.config.settle
        version, _, _ = await self.fetch_map(api)
        while True:
            for viewer in self.viewers:
                viewer.server_version = max(viewer.server_version, version)
            while monotonic() < deadline and any(v.version < version for v in self.viewers):
                await asyncio.sleep(0.1)
            # Compare against a map read after the viewers caught up; if it moved on (the
            # sweeper, a straggler), wait for that version too.
            again, truth, _ = await self.fetch_map(api)
            if again == version or monotonic() >= deadline:
                return again, truth
            version = again


async def run_load(config: Config) -> dict:
    """Runs the load test; returns the raw measurements for report.build()."""
    if config.mode not in MODES:
        raise LoadTestError(f"Unknown mode {config.mode!r}; use one of {', '.join(MODES)}.")
    run = Run(config)
    api = Session(config.urls[0])
    version, baseline, seats = await run.fetch_map(api)
    if not seats:
        raise LoadTestError(f"Event {config.event_id} has no seats.")
    hot = best_seats(seats, config.hot)
    all_free = [s["id"] for s in seats if s["state"] == "available"]

    pids = list(config.server_pids)
    if not pids:
        for url in config.urls:
            parts = urlsplit(url)
            if parts.hostname in ("127.0.0.1", "localhost", "::1"):
                pids.extend(p for p in pids_listening_on(parts.port or 80) if p not in pids)
    run.memory = MemoryWatch(pids)
    background = [
        asyncio.create_task(run.show_progress()),
        asyncio.create_task(run.watch_memory()),
    ]
    await run.open_customers()
    viewer_tasks = await run.open_viewers(baseline, version)
    background.append(asyncio.create_task(run.watch_viewers()))
    connected_at_start = sum(1 for v in run.viewers if v.ws is not None)

    run.say(f"load: {config.mode}, {len(run.customers)} customers, event {config.event_id}")
    run.timeline = Timeline(monotonic())
    run.load_started = monotonic()
    driver = asyncio.create_task(run.drive(hot, all_free))
    done, _ = await asyncio.wait({driver}, timeout=config.duration)
    run.stop.set()
    if not done:
        await driver
    driver.result()
    run.load_ended = monotonic()
    if not config.quiet and sys.stderr.isatty():
        print("\r" + run.progress_line(run.load_ended), file=sys.stderr, flush=True)

    run.say("load finished; waiting for every viewer to catch up")
    settle_started = monotonic()
    final_version, truth = await run.settle(api)
    settle_seconds = monotonic() - settle_started
    connected_at_end = sum(1 for v in run.viewers if v.ws is not None)
    run.memory.sample()

    viewers_out_of_date = []
    for viewer in run.viewers:
        stale = viewer.differences(truth)
        if stale or viewer.connects == 0 or viewer.version < final_version:
            viewers_out_of_date.append(
                {
                    "viewer": viewer.number,
                    "url": viewer.base_url,
                    "version": viewer.version,
                    "stale_seats": stale[:20],
                    "stale_count": len(stale),
                    "ever_connected": viewer.connects > 0,
                    "last_error": viewer.last_error,
                }
            )

    for task in background:
        task.cancel()
    await asyncio.gather(*(v.close() for v in run.viewers))
    for task in viewer_tasks:
        task.cancel()
    await asyncio.gather(*viewer_tasks, *background, return_exceptions=True)
    await asyncio.gather(*(c.session.close() for c in run.customers), api.close())

    return {
        "run": run,
        "hot": hot,
        "seat_ids": set(baseline),
        "start_version": version,
        "final_version": final_version,
        "truth": truth,
        "connected_at_start": connected_at_start,
        "connected_at_end": connected_at_end,
        "viewers_out_of_date": viewers_out_of_date,
        "settle_seconds": settle_seconds,
        "wall_clock": time.time(),
    }
