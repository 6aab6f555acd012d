"""Viewers driven by one event loop: in the main process with the customers, or in a
process of their own (fleet_process) when --viewer-processes spreads them out.

The TypedDicts here are what a fleet in another process receives and sends back.
"""

import asyncio
import sys
from typing import Protocol, TypedDict

from .shapes import StaleViewer
from .stats import ChangeKey, ChangeLog, clock
from .viewer import Viewer

# Viewers open their sockets this many at a time (a browser crowd arrives over seconds, and
# a burst of thousands of handshakes overflows the listen backlog).
CONNECT_BATCH = 100


class FleetSpec(TypedDict):
    """Which viewers a fleet runs, and what they start from."""

    name: str
    numbers: list[int]
    urls: list[str]
    event_id: int
    baseline: dict[int, str]
    base_version: int
    deflate: bool
    open_timeout: float
    quiet: bool


class FleetStatus(TypedDict):
    connected: int
    # Viewers below the version asked about (0 when none was).
    behind: int


class ViewerStats(TypedDict):
    number: int
    frames: int
    bytes: int
    connects: int
    failed_connects: int
    drops: int
    failovers: int
    resyncs: int


class FleetResult(TypedDict):
    """A fleet's account at the end: its viewers, the ones out of date, what they saw (the
    observations, when they were not written into the run's own ChangeLog) and the event
    loop's lag as (when, seconds) pairs (from a process of its own only)."""

    name: str
    viewers: list[ViewerStats]
    out_of_date: list[StaleViewer]
    connected: int
    observations: dict[ChangeKey, bytes]
    lag: list[tuple[float, float]]


class Fleet(Protocol):
    """What the runner needs of a fleet, wherever its viewers run."""

    name: str
    size: int

    async def open(self) -> None: ...

    def connected(self) -> int: ...

    async def status(self, version: int | None) -> FleetStatus: ...

    async def finish(self, truth: dict[int, str], final_version: int) -> FleetResult: ...

    async def abort(self) -> None: ...


class ViewerFleet:
    """Viewers on this process's event loop, each keeping its own copy of the map."""

    def __init__(self, spec: FleetSpec, changes: ChangeLog) -> None:
        self.name = spec["name"]
        self.spec = spec
        self.size = len(spec["numbers"])
        urls = spec["urls"]
        self.viewers = [
            Viewer(
                number=n,
                # Viewer n starts on server n mod len(urls) and fails over to the next ones.
                urls=urls[n % len(urls) :] + urls[: n % len(urls)],
                event_id=spec["event_id"],
                baseline=spec["baseline"],
                base_version=spec["base_version"],
                changes=changes,
                deflate=spec["deflate"],
            )
            for n in spec["numbers"]
        ]
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Connects the viewers, CONNECT_BATCH at a time, each batch given open_timeout;
        they keep reconnecting by themselves."""
        timeout = self.spec["open_timeout"]
        for start in range(0, len(self.viewers), CONNECT_BATCH):
            batch = self.viewers[start : start + CONNECT_BATCH]
            self.tasks.extend(asyncio.create_task(v.run(open_timeout=timeout)) for v in batch)
            waits = [asyncio.create_task(v.connected.wait()) for v in batch]
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for waiter in pending:
                waiter.cancel()
            if not self.spec["quiet"]:
                print(
                    f"viewers connected ({self.name}): {self.connected()}/{self.size}",
                    file=sys.stderr,
                    flush=True,
                )
        self.tasks.append(asyncio.create_task(self._watch()))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = clock()
            for viewer in self.viewers:
                viewer.check(now)

    def connected(self) -> int:
        return sum(1 for v in self.viewers if v.ws is not None)

    async def status(self, version: int | None) -> FleetStatus:
        """Tells the viewers the server has reached `version` (a laggard asks for a
        catch-up, as after a heartbeat) and counts those not there yet."""
        behind = 0
        if version is not None:
            for viewer in self.viewers:
                viewer.server_version = max(viewer.server_version, version)
                behind += viewer.version < version
        return {"connected": self.connected(), "behind": behind}

    async def finish(self, truth: dict[int, str], final_version: int) -> FleetResult:
        """Compares every viewer's map with `truth`, then closes the viewers."""
        out_of_date: list[StaleViewer] = []
        for viewer in self.viewers:
            stale = viewer.differences(truth)
            if stale or viewer.connects == 0 or viewer.version < final_version:
                out_of_date.append(
                    {
                        "viewer": viewer.number,
                        "url": viewer.url,
                        "version": viewer.version,
                        "stale_seats": stale[:20],
                        "stale_count": len(stale),
                        "ever_connected": viewer.connects > 0,
                        "last_error": viewer.last_error,
                    }
                )
        connected = self.connected()
        await self.abort()
        return {
            "name": self.name,
            "viewers": [
                {
                    "number": v.number,
                    "frames": v.frames,
                    "bytes": v.bytes,
                    "connects": v.connects,
                    "failed_connects": v.failed_connects,
                    "drops": v.drops,
                    "failovers": v.failovers,
                    "resyncs": v.resyncs,
                }
                for v in self.viewers
            ],
            "out_of_date": out_of_date,
            "connected": connected,
            "observations": {},
            "lag": [],
        }

    async def abort(self) -> None:
        """Closes every viewer and stops its task."""
        await asyncio.gather(*(v.close() for v in self.viewers))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
