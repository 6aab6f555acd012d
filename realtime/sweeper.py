"""The hold sweeper loop: releases expired holds so every viewer sees the seats free up."""

import asyncio
import logging

from seats.services import expire_holds

from .db import in_worker_thread

logger = logging.getLogger(__name__)


async def sweep_forever(*, interval: float, stop: asyncio.Event | None = None) -> None:
    """Sweeps every `interval` seconds until `stop` is set. Errors are logged, not fatal.

    Runs the database work in a worker thread; the post-commit announcements then reach the
    channel layer through this loop, so the loop keeps a single layer connection.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            released = await in_worker_thread(expire_holds)()
            if released:
                logger.info("Released %d seats from expired holds", released)
        except Exception:
            logger.exception("Hold sweep failed; trying again in %.1fs", interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
