"""The run: viewers connect, customers rush/browse/trickle, then everything is checked.

One event loop drives every viewer and customer (no thread per viewer). Customers use the
JSON API the seat page's own actions reach; viewers use the page's WebSocket.
"""

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from .answers import SeatMap, seat_map
from .config import MODES, Config, CustomerLogin, LoadTestError
from .customer import Customer, Ledger
from .http import HttpError, Session, log_in, sign_up
from .modes import Load, StopReason, best_seats
from .procmem import MemoryWatch, pids_listening_on
from .shapes import StaleViewer
from .stats import Timeline, monotonic, percentile
from .viewer import Viewer

# Viewers open their sockets this many at a time (a browser crowd arrives over seconds, and
# a burst of thousands of handshakes overflows the listen backlog).
CONNECT_BATCH = 100


@dataclass
class RunResult:
    """The raw measurements of a finished run, for report.build()."""

    run: "Run"
    hot: list[int]
    seat_ids: set[int]
    start_version: int
    final_version: int
    truth: dict[int, str]
    connected_at_start: int
    connected_at_end: int
    viewers_out_of_date: list[StaleViewer]
    settle_seconds: float


class Run:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.ledger = Ledger()
        self.viewers: list[Viewer] = []
        self.customers: list[Customer] = []
        self.load = Load(config, [], self.ledger)
        self.load_started = 0.0
        self.load_ended = 0.0
        self.memory = MemoryWatch([])

    # --- output ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if not self.config.quiet:
            print(text, file=sys.stderr, flush=True)

    def progress_line(self, now: float) -> str:
        ledger = self.ledger
        connected = sum(1 for v in self.viewers if v.ws is not None)
        elapsed = now - self.load_started if self.load_started else 0.0
        rate = ledger.bookings.ok / elapsed if elapsed > 0 else 0.0
        recent = sorted(ledger.timeline.recent_booking_latencies(5, now))
        p99 = percentile(recent, 0.99)
        p99_text = f"{p99 * 1000:.0f}ms" if p99 is not None else "-"
        return (
            f"[{elapsed:6.1f}s] viewers {connected}/{len(self.viewers)} | bookings "
            f"{ledger.bookings.ok} ({rate:.1f}/s) | conflicts "
            f"{ledger.bookings.conflict + ledger.holds.conflict} | busy "
            f"{ledger.bookings.busy + ledger.holds.busy} | errors "
            f"{ledger.bookings.error + ledger.holds.error} | booking p99 (5s) {p99_text}"
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

    async def fetch_map(self, session: Session) -> SeatMap:
        path = f"/api/events/{self.config.event_id}/seats"
        try:
            response = await session.request("GET", path)
        except HttpError as exc:
            raise LoadTestError(f"Cannot reach {session.base_url}: {exc}") from exc
        if response.status != 200:
            raise LoadTestError(f"GET {path} answered {response.status}: {response.body[:200]!r}")
        answer = seat_map(response.json())
        if answer is None:
            raise LoadTestError(f"GET {path} did not answer a seat map: {response.body[:200]!r}")
        return answer

    async def open_customers(self) -> None:
        urls = self.config.urls
        # Logging in hashes a password (the server's slow path); and a burst of first requests
        # would open as many database connections at once.
        gate = asyncio.Semaphore(4)

        async def open_one(number: int, login: CustomerLogin) -> Customer:
            session = Session(urls[number % len(urls)])
            how, username, password = login.how, login.username, login.password
            if how == "cookies":
                session.cookies.update(login.cookies)
            else:
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
            return Customer(number, session, event_id=self.config.event_id, ledger=self.ledger)

        self.customers = list(
            await asyncio.gather(
                *(open_one(n, login) for n, login in enumerate(self.config.customer_logins))
            )
        )
        self.load = Load(self.config, self.customers, self.ledger)

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

    async def open_viewers(
        self, baseline: dict[int, str], version: int
    ) -> list[asyncio.Task[None]]:
        urls = self.config.urls
        self.viewers = [
            Viewer(
                number=n,
                base_url=urls[n % len(urls)],
                event_id=self.config.event_id,
                baseline=baseline,
                base_version=version,
                changes=self.ledger.changes,
                deflate=self.config.deflate,
            )
            for n in range(self.config.viewers)
        ]
        tasks: list[asyncio.Task[None]] = []
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

    async def drive(self, hot: list[int], all_free: list[int]) -> None:
        """Runs the load until its mode is done, --duration passes or Ctrl-C. A first Ctrl-C
        ends the load as --duration would (the run still settles and reports); a second one
        aborts."""
        loop = asyncio.get_running_loop()

        def interrupted() -> None:
            self.load.halt("interrupted")
            loop.remove_signal_handler(signal.SIGINT)

        # Not possible outside the main thread or on Windows: Ctrl-C then aborts at once.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, interrupted)
        try:
            self.ledger.timeline = Timeline(monotonic())
            self.load_started = monotonic()
            driver = asyncio.create_task(self.load.drive(hot, all_free))
            done, _ = await asyncio.wait({driver}, timeout=self.config.duration)
            if not done:
                self.load.halt("duration")
                await driver
            driver.result()
            self.load_ended = monotonic()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        if not self.config.quiet and sys.stderr.isatty():
            print("\r" + self.progress_line(self.load_ended), file=sys.stderr, flush=True)

    @property
    def stop_reason(self) -> StopReason:
        return self.load.reason or StopReason("customers_done", "every customer stopped")

    # --- settling ----------------------------------------------------------------------

    async def settle(self, api: Session) -> tuple[int, dict[int, str]]:
        """Waits until every connected viewer has reached the server's version (asking
        laggards to resync, as a heartbeat would), then returns the server's final map."""
        deadline = monotonic() + self.config.settle
        version = (await self.fetch_map(api)).version
        while True:
            for viewer in self.viewers:
                viewer.server_version = max(viewer.server_version, version)
            while monotonic() < deadline and any(v.version < version for v in self.viewers):
                await asyncio.sleep(0.1)
            # Compare against a map read after the viewers caught up; if it moved on (the
            # sweeper, a straggler), wait for that version too.
            again = await self.fetch_map(api)
            if again.version == version or monotonic() >= deadline:
                return again.version, again.states()
            version = again.version


async def run_load(config: Config) -> RunResult:
    """Runs the load test; returns the raw measurements for report.build()."""
    if config.mode not in MODES:
        raise LoadTestError(f"Unknown mode {config.mode!r}; use one of {', '.join(MODES)}.")
    run = Run(config)
    api = Session(config.urls[0])
    start_map = await run.fetch_map(api)
    version, baseline, seats = start_map.version, start_map.states(), start_map.seats
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
    await run.drive(hot, all_free)
    run.say(
        f"load stopped at {run.load_ended - run.load_started:.1f} s: {run.stop_reason.text}; "
        "waiting for every viewer to catch up"
    )
    settle_started = monotonic()
    final_version, truth = await run.settle(api)
    settle_seconds = monotonic() - settle_started
    connected_at_end = sum(1 for v in run.viewers if v.ws is not None)
    run.memory.sample()

    viewers_out_of_date: list[StaleViewer] = []
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

    return RunResult(
        run=run,
        hot=hot,
        seat_ids=set(baseline),
        start_version=version,
        final_version=final_version,
        truth=truth,
        connected_at_start=connected_at_start,
        connected_at_end=connected_at_end,
        viewers_out_of_date=viewers_out_of_date,
        settle_seconds=settle_seconds,
    )
