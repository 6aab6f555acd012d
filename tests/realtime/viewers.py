"""Clients of real server processes: seat-map viewers over real WebSockets, and API calls."""

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message

import websockets
from django.db import connection

from events.models import Event
from seats.models import Seat
from tests.servers import Server

MARKER = re.compile(r'^<div id="live-version" data-kind="(\w+)" data-version="(\d+)"')
SEAT = re.compile(r'id="seat-(\d+)"[^>]*?data-state="(\w+)"')


def post(
    server: Server, path: str, body: dict, headers: dict, timeout: float = 10
) -> tuple[int, dict, Message]:
    """POSTs JSON; returns the answer's status, JSON body and headers."""
    request = urllib.request.Request(
        server.origin + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def post_json(
    server: Server, path: str, body: dict, headers: dict, timeout: float = 10
) -> tuple[int, dict]:
    status, answer, _ = post(server, path, body, headers, timeout)
    return status, answer


def database_view(event_id: int) -> tuple[int, dict[int, str]]:
    """The event's version and seat states, read in this thread (closed after: call it
    through asyncio.to_thread from a test's event loop)."""
    try:
        version = Event.objects.values_list("version", flat=True).get(pk=event_id)
        return version, dict(Seat.objects.filter(event_id=event_id).values_list("pk", "state"))
    finally:
        connection.close()


class Viewer:
    """A browser's view of the map: applies frames in version order, as live.js does."""

    def __init__(
        self, server: Server, event_id: int, version: int, states: dict[int, str] | None = None
    ) -> None:
        self.server, self.event_id, self.version = server, event_id, version
        self.states: dict[int, str] = dict(states or {})
        self.ws: websockets.ClientConnection | None = None

    async def connect(self) -> "Viewer":
        self.ws = await websockets.connect(
            self.server.ws_url(self.event_id, self.version),
            origin=self.server.origin,
            max_queue=None,
            open_timeout=10,
        )
        return self

    def apply(self, frame: str) -> bool:
        """Applies the frame as live.js does; returns whether the viewer should resync from
        its version (a gap, or a heartbeat that disagrees with it)."""
        kind, raw_version = MARKER.match(frame).groups()
        version = int(raw_version)
        if kind == "heartbeat":
            return version != self.version
        stale = self.version >= version if kind == "delta" else self.version > version
        if stale and kind != "reset":  # a reset is taken whatever the viewer believed
            return False
        self.states.update({int(i): s for i, s in SEAT.findall(frame)})
        if kind == "delta" and version > self.version + 1:
            return True  # shown, but the versions between are still to come
        self.version = version
        return False

    async def wait_for(self, seat_id: int, state: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while self.states.get(seat_id) != state:
                self.apply(await self.ws.recv())


class LiveViewer(Viewer):
    """A viewer that keeps following, as live.js does: it records how each socket ended
    (close code, 1006 without one) and reconnects from the version reached, to its servers
    in turn (a proxy in front of several processes), also after a refused handshake."""

    def __init__(
        self, servers: list[Server], event_id: int, version: int, states: dict[int, str]
    ) -> None:
        super().__init__(servers[0], event_id, version, states)
        self.servers = servers
        self.closes: list[int] = []
        self.refused = 0
        self.opened = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> "LiveViewer":
        await self.connect()
        self.opened += 1
        self._task = asyncio.create_task(self._follow())
        return self

    async def _follow(self) -> None:
        while True:
            try:
                while True:
                    if self.apply(await self.ws.recv()):
                        await self.ws.send(json.dumps({"type": "resync", "version": self.version}))
            except websockets.ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd else 1006)
            while True:
                await asyncio.sleep(0.3)
                try:
                    await self.connect()
                except (OSError, TimeoutError, websockets.InvalidHandshake):
                    self.refused += 1
                    index = self.servers.index(self.server)
                    self.server = self.servers[(index + 1) % len(self.servers)]
                else:
                    self.opened += 1
                    break

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self.ws:
            await self.ws.close()


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Waits until `check()` holds; returns the seconds it took. Fails after `timeout`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)
    return loop.time() - started


async def converged(viewers: list[LiveViewer], event_id: int, timeout: float) -> None:
    """Waits until every viewer shows the database's version and seat states."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        version, states = await asyncio.to_thread(database_view, event_id)
        behind = [v for v in viewers if (v.version, v.states) != (version, states)]
        if not behind:
            return
        if loop.time() > deadline:
            wrong = [
                {s: v.states.get(s) for s in states if v.states.get(s) != states[s]} for v in behind
            ]
            raise AssertionError(
                f"{len(behind)} of {len(viewers)} viewers differ from the database at version "
                f"{version}: versions {[v.version for v in behind]}, seats {wrong}"
            )
        await asyncio.sleep(0.2)
