"""A fleet of viewers in a process of its own (--viewer-processes), so that the receipt
times it takes are not delayed by the event loop that also drives the customers and the
other viewers.

The process is started with "spawn": it imports only the load test's client modules, never
Django. It talks to the main process over a pipe, one request and one answer at a time:
after connecting its viewers it sends a FleetStatus; then it answers every StatusRequest
with a FleetStatus, and a FinishRequest with its FleetResult, and ends. Receipt times are on
stats.clock(), which every process of the run shares.
"""

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from typing import Literal, TypedDict, TypeVar, cast

from .fleet import FleetResult, FleetSpec, FleetStatus, ViewerFleet
from .stats import ChangeLog, LoopLag

T = TypeVar("T")


class FleetProcessError(Exception):
    """The viewer process ended without answering (it printed why on stderr)."""


class StatusRequest(TypedDict):
    op: Literal["status"]
    version: int | None


class FinishRequest(TypedDict):
    op: Literal["finish"]
    truth: dict[int, str]
    final_version: int


async def receive(conn: Connection) -> object:
    """The next message on the pipe, waiting for it without blocking the event loop.
    Raises EOFError when the other end has closed."""
    if not conn.poll():
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(conn.fileno(), on_readable)
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())
            # uvloop leaves the descriptor non-blocking, and Connection's send() and recv()
            # of a large message would then fail half-way.
            os.set_blocking(conn.fileno(), True)
    message: object = conn.recv()
    return message


def run_loop(main: Coroutine[object, object, T]) -> T:
    """Runs `main` on uvloop when it is installed (it comes with uvicorn[standard]): a third
    less CPU per frame, which is what limits how many viewers one process can drive."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class RemoteFleet:
    """The main process's handle on a fleet running in another process."""

    def __init__(self, spec: FleetSpec, changes: ChangeLog) -> None:
        self.name = spec["name"]
        self.size = len(spec["numbers"])
        self.spec = spec
        self.changes = changes
        self._connected = 0
        self._lock = asyncio.Lock()
        context = multiprocessing.get_context("spawn")
        self.conn, child_end = context.Pipe()
        self.process = context.Process(
            target=fleet_process_main, args=(child_end, spec), name=self.name, daemon=True
        )
        self.process.start()
        child_end.close()

    async def _receive(self) -> object:
        try:
            return await receive(self.conn)
        except (EOFError, OSError) as exc:
            raise FleetProcessError(
                f"The {self.name} process ended (exit code {self.process.exitcode}); "
                "see its error above."
            ) from exc

    async def open(self) -> None:
        async with self._lock:
            status = cast(FleetStatus, await self._receive())
        self._connected = status["connected"]

    def connected(self) -> int:
        """As of the last status."""
        return self._connected

    async def status(self, version: int | None) -> FleetStatus:
        async with self._lock:
            self.conn.send(StatusRequest(op="status", version=version))
            status = cast(FleetStatus, await self._receive())
        self._connected = status["connected"]
        return status

    async def finish(self, truth: dict[int, str], final_version: int) -> FleetResult:
        """Collects the fleet's result, adds its observations to the run's ChangeLog and
        waits for the process to end."""
        async with self._lock:
            self.conn.send(FinishRequest(op="finish", truth=truth, final_version=final_version))
            result = cast(FleetResult, await self._receive())
        self.changes.merge(result["observations"])
        self._connected = result["connected"]
        await asyncio.to_thread(self.process.join, 10)
        self.conn.close()
        return result

    async def abort(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join, 5)
        self.conn.close()


def fleet_process_main(conn: Connection, spec: FleetSpec) -> None:
    """The viewer process: runs its fleet until the main process asks for the result."""
    # Ctrl-C reaches the whole process group; the main process decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_loop(_serve(conn, spec))


async def _serve(conn: Connection, spec: FleetSpec) -> None:
    changes = ChangeLog()
    fleet = ViewerFleet(spec, changes)
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run())
    await fleet.open()
    conn.send(await fleet.status(None))
    while True:
        message = cast(StatusRequest | FinishRequest, await receive(conn))
        if message["op"] == "status":
            conn.send(await fleet.status(message["version"]))
            continue
        result = await fleet.finish(message["truth"], message["final_version"])
        lag_task.cancel()
        result["observations"] = changes.export()
        result["lag"] = list(zip(lag.at, lag.lag, strict=True))
        conn.send(result)
        conn.close()
        return
