"""realtime.wire: frames encoded once and written straight to uvicorn's WebSocket connections,
checked against the websockets library's own encoding and a real uvicorn server."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.protocol import State
from websockets.server import ServerProtocol

from realtime.wire import direct_writer, wire_frame
from tests.servers import free_port


@pytest.mark.parametrize("text", ["<div></div>", "é" * 100, "<b>x</b>" * 9000])
def test_a_frame_is_encoded_as_the_websockets_library_sends_it(text):
    protocol = ServerProtocol(state=State.OPEN)  # as after the handshake
    protocol.send_text(text.encode())

    assert wire_frame(text) == b"".join(protocol.data_to_send())


class App:
    """Accepts one socket, then writes `frames` through a DirectWriter (or the ASGI send if
    there is none) followed by one frame through the ASGI send, and records what it saw."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.direct: bool | None = None
        self.refused = 0  # writes the DirectWriter declined (the connection was paused)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        writer = direct_writer(send)
        self.direct = writer is not None
        for frame in self.frames:
            if writer is None or not writer.write(frame):
                self.refused += writer is not None
                await send({"type": "websocket.send", "text": frame})
        await send({"type": "websocket.send", "text": "last, through ASGI"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@asynccontextmanager
async def serving(app: App, *, deflate: bool) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, port=port, log_level="warning", lifespan="off", ws_per_message_deflate=deflate
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task


@pytest.mark.asyncio
async def test_frames_written_straight_to_uvicorns_connection_arrive_whole_and_in_order():
    frames = [f'<div id="f{n}">{"é" * n}</div>' for n in range(0, 3000, 500)]
    app = App(frames)
    async with serving(app, deflate=False) as url, websockets.connect(url, compression=None) as ws:
        received = [await ws.recv() for _ in range(len(frames) + 1)]

    assert app.direct is True
    assert received == [*frames, "last, through ASGI"]


@pytest.mark.asyncio
async def test_with_per_message_compression_frames_go_through_asgi():
    app = App(["<div>compressed</div>"])
    async with (
        serving(app, deflate=True) as url,
        websockets.connect(url, compression="deflate") as ws,
    ):
        received = [await ws.recv(), await ws.recv()]

    assert app.direct is False
    assert received == ["<div>compressed</div>", "last, through ASGI"]


@pytest.mark.asyncio
async def test_a_connection_that_stops_reading_is_left_to_asgis_flow_control():
    """Once the client's socket and the server's buffer are full, uvicorn pauses writing: the
    DirectWriter declines, and the frame waits in the ASGI send until the client reads."""
    frames = ["x" * 100_000] * 200  # 20 MB: more than the socket buffers hold
    app = App(frames)
    async with (
        serving(app, deflate=False) as url,
        websockets.connect(url, compression=None, max_size=None) as ws,
    ):
        await asyncio.sleep(0.5)  # not reading: the server fills what it can
        received = [await ws.recv() for _ in range(len(frames) + 1)]

    assert app.direct is True and app.refused > 0
    assert received == [*frames, "last, through ASGI"]
