"""A simulated seat-map viewer: one WebSocket, a seat -> state map, the version reached.

It follows the same rules as the page's live.js: frames carry their version in the first
element; a delta one past the version advances it, a newer one is a gap (ask for a resync
if it is not filled soon), an older one is already known; a sync frame brings the map up to
its version; a heartbeat ahead of the version means something was missed. A socket that
closes, or cannot be opened, is opened again from the version reached, to the next of the
site's servers (as a proxy in front of several processes would route around a dead one).
"""

import asyncio
import contextlib
import json
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from .http import next_url
from .stats import ChangeLog, clock

MARKER = re.compile(rb'<div id="live-version" data-kind="(\w+)" data-version="(\d+)"')
SEAT = re.compile(rb'id="seat-(\d+)"[^>]*?data-state="(\w+)"')

# A gap that the feed's own reordering has not filled in this long is a lost frame.
GAP_PATIENCE = 1.0
# Not more than one resync request in flight per viewer (live.js waits 3 s too).
RESYNC_INTERVAL = 3.0


def ws_url(base_url: str, event_id: int, version: int) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/ws/events/{event_id}/?v={version}"


def origin_of(base_url: str) -> Origin:
    parts = urlsplit(base_url)
    return Origin(f"{parts.scheme}://{parts.netloc}")


class Viewer:
    """Keeps its own view of the map on top of a baseline shared by every viewer, so a
    thousand viewers of a 5,000-seat map do not hold five million entries. `urls`: the
    site's servers, the first one first."""

    def __init__(
        self,
        *,
        number: int,
        urls: Sequence[str],
        event_id: int,
        baseline: dict[int, str],
        base_version: int,
        changes: ChangeLog,
        cookie: str = "",
        deflate: bool = False,
    ) -> None:
        self.number = number
        self.urls = list(urls)
        self.url = self.urls[0]
        self.event_id = event_id
        self.baseline = baseline
        self.base_version = base_version
        self.changes = changes
        self.cookie = cookie
        self.deflate = deflate
        self.overrides: dict[int, str] = {}
        self.seat_version: dict[int, int] = {}
        self.version = base_version
        self.ahead: set[int] = set()
        self.gap_since: float | None = None
        self.server_version = base_version
        self.behind_since: float | None = None
        self.last_resync = -RESYNC_INTERVAL
        self.resyncs = 0
        self.frames = 0
        self.bytes = 0
        self.connects = 0
        self.failed_connects = 0
        self.drops = 0
        # Times the viewer moved on to another server after a drop or a failed connect.
        self.failovers = 0
        self.last_error = ""
        self.ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        # Sends in flight, referenced so that none is garbage-collected half-way.
        self._sending: set[asyncio.Task[None]] = set()
        self.stopping = False

    # --- the map ----------------------------------------------------------------------

    def state(self, seat_id: int) -> str | None:
        return self.overrides.get(seat_id) or self.baseline.get(seat_id)

    def differences(self, truth: dict[int, str]) -> list[int]:
        """Seats whose state here is not `truth`'s."""
        return [seat_id for seat_id, state in truth.items() if self.state(seat_id) != state]

    def apply(self, data: bytes, at: float) -> None:
        """Applies one frame received at `at`."""
        self.frames += 1
        self.bytes += len(data)
        marker = MARKER.match(data)
        if marker is None:
            return
        kind, version = marker.group(1), int(marker.group(2))
        if kind == b"heartbeat":
            if version > self.server_version:
                self.server_version = version
            return
        for raw_id, raw_state in SEAT.findall(data, marker.end()):
            seat_id = int(raw_id)
            # A seat's newest news wins, whatever order frames come in.
            if version <= self.seat_version.get(seat_id, self.base_version):
                continue
            state = raw_state.decode()
            self.seat_version[seat_id] = version
            if self.state(seat_id) != state:
                self.overrides[seat_id] = state
                self.changes.observe(seat_id, state, at)
        if version > self.server_version:
            self.server_version = version
        if kind in (b"sync", b"reset"):
            if version > self.version:
                self.version = version
            self.ahead = {v for v in self.ahead if v > self.version}
        elif version == self.version + 1:
            self.version = version
        elif version > self.version:
            self.ahead.add(version)
        while self.version + 1 in self.ahead:
            self.version += 1
            self.ahead.discard(self.version)
        self.ahead = {v for v in self.ahead if v > self.version} if self.ahead else self.ahead
        self.gap_since = (self.gap_since or at) if self.ahead else None

    # --- the socket ---------------------------------------------------------------------

    async def run(self, *, open_timeout: float) -> None:
        """Connects, reads until stopped, and reconnects (from the version reached) when the
        server drops the connection, as the page does: to the next server, if there are
        several, after a drop or a failed attempt."""
        backoff = 0.2
        while not self.stopping:
            url = ws_url(self.url, self.event_id, self.version)
            headers = {"Cookie": self.cookie} if self.cookie else None
            try:
                async with connect(
                    url,
                    origin=origin_of(self.url),
                    additional_headers=headers,
                    compression="deflate" if self.deflate else None,
                    ping_interval=None,
                    max_size=None,
                    max_queue=256,
                    open_timeout=open_timeout,
                    proxy=None,
                ) as ws:
                    self.ws = ws
                    self.connects += 1
                    self.connected.set()
                    backoff = 0.2
                    while True:
                        data = await ws.recv(decode=False)
                        self.apply(data, clock())
            except asyncio.CancelledError:
                raise
            except ConnectionClosed as exc:
                if self.stopping:
                    return
                self.drops += 1
                self.last_error = f"closed {exc.rcvd.code if exc.rcvd else 'abnormally'}"
            except (OSError, TimeoutError, InvalidHandshake, InvalidStatus) as exc:
                self.failed_connects += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self.ws = None
                self.connected.clear()
            if self.stopping:
                return
            following = next_url(self.urls, self.url)
            if following != self.url:
                self.url = following
                self.failovers += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 3.0)

    def check(self, now: float) -> None:
        """Asks for a catch-up when a gap has not filled, or a heartbeat said the server is
        ahead, for longer than the feed needs to deliver in order."""
        behind = self.server_version > self.version
        if behind and self.behind_since is None:
            self.behind_since = now
        elif not behind:
            self.behind_since = None
        overdue = (self.gap_since is not None and now - self.gap_since > GAP_PATIENCE) or (
            self.behind_since is not None and now - self.behind_since > 2 * GAP_PATIENCE
        )
        if overdue and self.ws is not None and now - self.last_resync > RESYNC_INTERVAL:
            self.request_resync(now)

    def request_resync(self, now: float) -> None:
        if self.ws is None:
            return
        self.last_resync = now
        self.resyncs += 1
        message = json.dumps({"type": "resync", "version": self.version})
        task = asyncio.get_running_loop().create_task(self._send(message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, message: str) -> None:
        ws = self.ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(message)

    async def close(self) -> None:
        self.stopping = True
        if self.ws is not None:
            with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
                await asyncio.wait_for(self.ws.close(), 2)
