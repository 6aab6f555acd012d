"""One frame, encoded once, written to every socket of uvicorn's WebSocket protocol.

Through ASGI, each socket's send encodes the frame's text, builds a WebSocket frame around
it and joins the output again: for a thousand viewers, a thousand times the same bytes, and
about a third of the fan-out's interpreter time beside the socket writes themselves. Here
the feed's frame is encoded once (`wire_frame`) and written straight to each connection's
transport (`direct_writer`) whenever uvicorn's own send would write at once: the handshake
is done, nothing is closing, the connection takes more (not paused by flow control) and no
extension (per-message compression) has to transform the payload. Otherwise, and with any
other server, frames go through the ASGI send as before.

This reads attributes of uvicorn's sans-I/O WebSocket protocol that are not part of ASGI:
`direct_writer` checks that they are all there and returns None (the ASGI path) if not.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import State

# The frame encoded last: the feed hands every socket the same string object in turn.
_last: tuple[str, bytes] | None = None


def wire_frame(text: str) -> bytes:
    """The unmasked WebSocket text frame (server to client) carrying `text`."""
    global _last
    last = _last
    if last is not None and last[0] is text:
        return last[1]
    encoded = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    _last = (text, encoded)
    return encoded


class DirectWriter:
    """Writes encoded frames to one uvicorn WebSocket connection, when it may. One per
    socket, so it keeps nothing but the connection (an idle viewer's memory counts)."""

    __slots__ = ("protocol",)

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, text: str) -> bool:
        """Writes the frame and returns True, or returns False (nothing written) when the
        connection is not in a state to take it now: the caller sends it through ASGI."""
        protocol = self.protocol
        transport: asyncio.Transport = protocol.transport
        if (
            not protocol.writable.is_set()
            or protocol.disconnected
            or protocol.close_sent
            or protocol.conn.state is not State.OPEN
            or protocol.conn.expect_continuation_frame
            or transport.is_closing()
        ):
            return False
        transport.write(wire_frame(text))
        return True


def direct_writer(send: Callable[..., Any]) -> DirectWriter | None:
    """A DirectWriter for the connection behind an ASGI `send`, if it is uvicorn's sans-I/O
    WebSocket protocol with the handshake done and no extensions; else None."""
    protocol: Any = getattr(send, "__self__", None)
    if type(protocol).__name__ != "WebSocketsSansIOProtocol":
        return None
    conn = getattr(protocol, "conn", None)
    needed = ("transport", "writable", "disconnected", "close_sent", "handshake_complete")
    if (
        conn is None
        or not all(hasattr(protocol, name) for name in needed)
        or not protocol.handshake_complete
        or getattr(conn, "extensions", None) != []
        or not hasattr(conn, "expect_continuation_frame")
        or not isinstance(protocol.writable, asyncio.Event)
    ):
        return None
    return DirectWriter(protocol)
