"""The hold sweeper loop: releases expired holds so every viewer sees the seats free up.

Run by the web process's lifespan (embedded default) or by `manage.py sweep_holds --loop`.
"""

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from .services import expire_holds

logger = logging.getLogger(__name__)


def _sweep_once() -> int:
    close_old_connections()
    try:
        return expire_holds()
    finally:
        close_old_connections()


async def sweep_forever(*, interval: float, stop: asyncio.Event | None = None) -> None:
    """Sweeps every `interval` seconds until `stop` is set. Errors are logged, not fatal.

    Runs the database work in a worker thread; the post-commit announcements then reach the
    channel layer through this loop, so the loop keeps a single layer connection.
    """
    stop = stop or asyncio.Event()
    sweep = sync_to_async(_sweep_once, thread_sensitive=False)
    while not stop.is_set():
        try:
            released = await sweep()
            if released:
                logger.info("Released %d seats from expired holds", released)
        except Exception:
            logger.exception("Hold sweep failed; trying again in %.1fs", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
