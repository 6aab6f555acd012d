"""The viewer's frame bookkeeping that the load test's verdict rests on, and its reconnects."""

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection, serve

from loadtest.stats import ChangeLog
from loadtest.viewer import Viewer


def frame(kind: str, version: int, *seats: tuple[int, str]) -> bytes:
    buttons = "".join(
        f'<button type="submit" name="seat" value="{s}" id="seat-{s}" class="seat" '
        f'data-state="{state}" data-price="40.00">1</button>'
        for s, state in seats
    )
    marker = f'<div id="live-version" data-kind="{kind}" data-version="{version}"></div>'
    return (marker + buttons).encode()


def make_viewer(changes=None, urls=("http://127.0.0.1:1",)) -> Viewer:
    return Viewer(
        number=0,
        urls=urls,
        event_id=1,
        baseline={1: "available", 2: "available", 3: "available"},
        base_version=10,
        changes=changes or ChangeLog(),
    )


def test_viewer_applies_frames_arriving_out_of_order():
    viewer = make_viewer()
    viewer.apply(frame("delta", 12, (1, "sold")), at=1.0)
    assert viewer.version == 10 and viewer.gap_since == 1.0  # 11 is missing
    viewer.apply(frame("delta", 11, (1, "held"), (2, "held")), at=1.1)
    assert viewer.version == 12 and viewer.gap_since is None
    # Seat 1's older news (held, version 11) must not undo its sale (version 12).
    assert viewer.differences({1: "sold", 2: "held", 3: "available"}) == []


def test_viewer_ignores_replays_and_catches_up_from_a_sync():
    changes = ChangeLog()
    viewer = make_viewer(changes)
    viewer.apply(frame("delta", 11, (3, "held")), at=1.0)
    viewer.apply(frame("delta", 11, (3, "held")), at=2.0)
    assert list(changes.seen[(3, "held")]) == [1.0]
    viewer.apply(frame("delta", 14, (2, "held")), at=3.0)
    assert viewer.version == 11
    viewer.apply(frame("sync", 15, (1, "sold"), (2, "sold"), (3, "available")), at=4.0)
    assert viewer.version == 15 and viewer.ahead == set() and viewer.gap_since is None
    assert viewer.differences({1: "sold", 2: "sold", 3: "available"}) == []
    assert viewer.differences({1: "sold", 2: "sold", 3: "held"}) == [3]


def test_viewer_behind_a_heartbeat_asks_for_a_resync_after_a_grace_period():
    viewer = make_viewer()
    viewer.apply(frame("heartbeat", 13), at=1.0)
    assert viewer.version == 10 and viewer.server_version == 13
    sent = []
    viewer.ws = object()
    viewer.request_resync = lambda now: sent.append(now)
    viewer.check(1.0)
    viewer.check(2.0)
    assert sent == []  # the deltas may still be on their way
    viewer.check(3.5)
    assert sent == [3.5]


@pytest.mark.asyncio
async def test_a_viewer_whose_socket_closes_resumes_from_its_version_on_the_next_server():
    paths: dict[str, list[str]] = {"restarting": [], "survivor": []}
    survivor_done = asyncio.Event()

    async def restarting(ws: ServerConnection) -> None:
        paths["restarting"].append(ws.request.path if ws.request else "")
        await ws.send(frame("delta", 11, (1, "sold")).decode())
        await ws.close(1012)  # uvicorn's "service restart"

    async def survivor(ws: ServerConnection) -> None:
        paths["survivor"].append(ws.request.path if ws.request else "")
        await ws.send(frame("sync", 12, (2, "held")).decode())
        await survivor_done.wait()

    async with (
        serve(restarting, "127.0.0.1", 0) as first,
        serve(survivor, "127.0.0.1", 0) as second,
    ):
        urls = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in (first, second)]
        viewer = make_viewer(urls=urls)
        task = asyncio.create_task(viewer.run(open_timeout=5))
        try:
            async with asyncio.timeout(5):
                while viewer.version < 12:
                    await asyncio.sleep(0.01)
        finally:
            survivor_done.set()
            await viewer.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert paths == {"restarting": ["/ws/events/1/?v=10"], "survivor": ["/ws/events/1/?v=11"]}
    assert (viewer.connects, viewer.drops, viewer.failovers) == (2, 1, 1)
    assert viewer.url == urls[1]
    assert viewer.differences({1: "sold", 2: "held", 3: "available"}) == []
