"""The run: viewers connect, customers rush/browse/trickle, then everything is checked.

One event loop drives the customers and, by default, every viewer too (no thread per
viewer); --viewer-processes moves the viewers to processes of their own. Customers use the
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
from .fleet import Fleet, FleetSpec, ViewerFleet, ViewerStats
from .fleet_process import FleetProcessError, RemoteFleet
from .http import HttpError, Session, log_in, next_url, sign_up
from .modes import Load, StopReason, best_seats
from .procmem import MemoryWatch, pids_listening_on
from .shapes import StaleViewer
from .stats import LoopLag, Timeline, clock, percentile


@dataclass
class ProcessLag:
    """One client process's event-loop lag during the load, in seconds."""

    name: str
    viewers: int
    lags: list[float]


@dataclass
class RunResult:
    """The raw measurements of a finished run, for report.build()."""

    run: "Run"
    hot: list[int]
    seat_ids: set[int]
    start_states: dict[int, str]
    start_version: int
    final_version: int
    truth: dict[int, str]
    connected_at_start: int
    connected_at_end: int
    viewers_out_of_date: list[StaleViewer]
    settle_seconds: float
    viewer_stats: list[ViewerStats]
    loop_lag: list[ProcessLag]


class Run:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.ledger = Ledger()
        self.fleets: list[Fleet] = []
        self.customers: list[Customer] = []
        self.load = Load(config, [], self.ledger)
        self.load_started = 0.0
        self.load_ended = 0.0
        self.memory = MemoryWatch([])
        self.lag = LoopLag()
        self.finishing = asyncio.Event()

    # --- output ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if not self.config.quiet:
            print(text, file=sys.stderr, flush=True)

    def progress_line(self, now: float) -> str:
        ledger = self.ledger
        connected = sum(fleet.connected() for fleet in self.fleets)
        elapsed = now - self.load_started if self.load_started else 0.0
        rate = ledger.bookings.ok / elapsed if elapsed > 0 else 0.0
        recent = sorted(ledger.timeline.recent_booking_latencies(5, now))
        p99 = percentile(recent, 0.99)
        p99_text = f"{p99 * 1000:.0f}ms" if p99 is not None else "-"
        return (
            f"[{elapsed:6.1f}s] viewers {connected}/{self.config.viewers} | bookings "
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
            now = clock()
            if self.config.quiet:
                continue
            if tty:
                print("\r" + self.progress_line(now), end="", file=sys.stderr, flush=True)
            elif now - last_line >= 5:
                last_line = now
                print(self.progress_line(now), file=sys.stderr, flush=True)

    async def watch_fleets(self) -> None:
        """Keeps the viewer counts of fleets in other processes current (progress line)
        until `finishing` is set. It is never cancelled: a status request cut off before
        its answer would leave that answer in the pipe for the next request."""
        while not self.finishing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.finishing.wait(), 1.0)
            if not self.finishing.is_set():
                await asyncio.gather(*(fleet.status(None) for fleet in self.fleets))

    async def watch_memory(self) -> None:
        while True:
            self.memory.sample()
            await asyncio.sleep(1.0)

    # --- setup -------------------------------------------------------------------------

    async def fetch_map(self, session: Session) -> SeatMap:
        """The event's seat map as the server has it. A server that gives no answer or is
        busy is asked again, through the next --url after no answer (a process may be
        down while the others serve)."""
        path = f"/api/events/{self.config.event_id}/seats"
        tries = 2 * len(self.config.urls)
        for attempt in range(1, tries + 1):
            try:
                response = await session.request("GET", path)
            except HttpError as exc:
                if attempt == tries:
                    raise LoadTestError(f"Cannot reach {session.base_url}: {exc}") from exc
                await session.move_to(next_url(self.config.urls, session.base_url))
                await asyncio.sleep(0.2)
                continue
            if response.status != 503 or attempt == tries:
                break
            await asyncio.sleep(0.5)
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
            return Customer(
                number,
                session,
                event_id=self.config.event_id,
                ledger=self.ledger,
                urls=urls[number % len(urls) :] + urls[: number % len(urls)],
            )

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

    async def open_viewers(self, baseline: dict[int, str], version: int) -> int:
        """Connects the viewers: here, or spread over --viewer-processes processes (viewer n
        in process n mod N). Returns how many connected."""
        config = self.config
        processes = min(config.viewer_processes, config.viewers)
        for index in range(processes):
            spec: FleetSpec = {
                "name": f"viewer process {index + 1}" if processes > 1 else "main process",
                "numbers": list(range(index, config.viewers, processes)),
                "urls": config.urls,
                "event_id": config.event_id,
                "baseline": baseline,
                "base_version": version,
                "deflate": config.deflate,
                "open_timeout": config.open_timeout,
                "quiet": config.quiet,
            }
            if processes > 1:
                self.fleets.append(RemoteFleet(spec, self.ledger.changes))
            else:
                self.fleets.append(ViewerFleet(spec, self.ledger.changes))
        try:
            await asyncio.gather(*(fleet.open() for fleet in self.fleets))
        except FleetProcessError as exc:
            raise LoadTestError(str(exc)) from exc
        connected = sum(fleet.connected() for fleet in self.fleets)
        if processes > 1:
            self.say(f"viewers connected: {connected}/{config.viewers} in {processes} processes")
        return connected

    async def close_viewers(self) -> None:
        await asyncio.gather(*(fleet.abort() for fleet in self.fleets), return_exceptions=True)

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
            self.ledger.timeline = Timeline(clock())
            self.memory.mark_load_start()
            self.load_started = clock()
            driver = asyncio.create_task(self.load.drive(hot, all_free))
            done, _ = await asyncio.wait({driver}, timeout=self.config.duration)
            if not done:
                self.load.halt("duration")
                await driver
            driver.result()
            self.load_ended = clock()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        if not self.config.quiet and sys.stderr.isatty():
            print("\r" + self.progress_line(self.load_ended), file=sys.stderr, flush=True)

    @property
    def stop_reason(self) -> StopReason:
        return self.load.reason or StopReason("customers_done", "every customer stopped")

    async def viewers_behind(self, version: int) -> int:
        statuses = await asyncio.gather(*(fleet.status(version) for fleet in self.fleets))
        return sum(status["behind"] for status in statuses)

    # --- settling ----------------------------------------------------------------------

    async def settle(self, api: Session) -> tuple[int, dict[int, str]]:
        """Waits until every connected viewer has reached the server's version (asking
        laggards to resync, as a heartbeat would), then returns the server's final map."""
        deadline = clock() + self.config.settle
        version = (await self.fetch_map(api)).version
        while True:
            while clock() < deadline and await self.viewers_behind(version):
                await asyncio.sleep(0.1)
            # Compare against a map read after the viewers caught up; if it moved on (the
            # sweeper, a straggler), wait for that version too.
            again = await self.fetch_map(api)
            if again.version == version or clock() >= deadline:
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
        asyncio.create_task(run.lag.run()),
    ]
    try:
        await run.open_customers()
        connected_at_start = await run.open_viewers(baseline, version)
        background.append(asyncio.create_task(run.watch_fleets()))

        run.say(f"load: {config.mode}, {len(run.customers)} customers, event {config.event_id}")
        await run.drive(hot, all_free)
        run.say(
            f"load stopped at {run.load_ended - run.load_started:.1f} s: "
            f"{run.stop_reason.text}; waiting for every viewer to catch up"
        )
        settle_started = clock()
        final_version, truth = await run.settle(api)
        settle_seconds = clock() - settle_started
        run.memory.mark_load_end()
        run.memory.sample()
        run.finishing.set()
        await background.pop()  # the last status request answered
        results = await asyncio.gather(
            *(fleet.finish(truth, final_version) for fleet in run.fleets)
        )
    except FleetProcessError as exc:
        raise LoadTestError(str(exc)) from exc
    finally:
        for task in background:
            task.cancel()
        await run.close_viewers()
        await asyncio.gather(*background, return_exceptions=True)
        await asyncio.gather(*(c.session.close() for c in run.customers), api.close())

    window = (run.load_started, run.load_ended)
    loop_lag = [
        ProcessLag(
            "main process" if len(run.fleets) < 2 else "main process (customers)",
            sum(fleet.size for fleet in run.fleets if isinstance(fleet, ViewerFleet)),
            run.lag.between(*window),
        )
    ]
    for fleet, result in zip(run.fleets, results, strict=True):
        if result["lag"]:
            lags = [lag for at, lag in result["lag"] if window[0] <= at <= window[1]]
            loop_lag.append(ProcessLag(result["name"], fleet.size, lags))
    return RunResult(
        run=run,
        hot=hot,
        seat_ids=set(baseline),
        start_states=baseline,
        start_version=version,
        final_version=final_version,
        truth=truth,
        connected_at_start=connected_at_start,
        connected_at_end=sum(result["connected"] for result in results),
        viewers_out_of_date=[stale for result in results for stale in result["out_of_date"]],
        settle_seconds=settle_seconds,
        viewer_stats=[stats for result in results for stats in result["viewers"]],
        loop_lag=loop_lag,
    )
