"""The worker loop: releases expired holds so every viewer sees the seats free up, and keeps
the seat-change log (and the API's idempotency keys) to their retention windows.

Run by the web process's lifespan (embedded default) or by `manage.py sweep_holds --loop`.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.db.models import Max
from django.utils import timezone

from .idempotency import prune_idempotency_keys
from .models import SeatChange
from .services import expire_holds

logger = logging.getLogger(__name__)

# The loop prunes the change log at most this often (and once when it starts).
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH_SIZE = 5000


def prune_seat_changes(
    *,
    keep_days: int,
    now: datetime | None = None,
    batch_size: int = PRUNE_BATCH_SIZE,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Deletes the seat changes older than `keep_days` days. Returns how many were deleted.

    Deletes `batch_size` rows per statement, each its own short transaction when called
    outside one, so no lock is held for long and bookings carry on meanwhile. Of each event's
    log it deletes a prefix by version: every change up to the newest old one, so the log
    left can replay every version from its oldest (realtime.catchup relies on that).
    `should_stop` is asked between batches; the rest waits for the next run.
    """
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    cutoff = (now or timezone.now()) - timedelta(days=keep_days)
    horizons = (
        SeatChange.objects.filter(at__lt=cutoff)
        .order_by()
        .values_list("event_id")
        .annotate(upto=Max("version"))
    )
    deleted = 0
    for event_id, upto in list(horizons):
        while not (should_stop and should_stop()):
            batch = list(
                SeatChange.objects.filter(event_id=event_id, version__lte=upto)
                .order_by("version", "id")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not batch:
                break
            n, _ = SeatChange.objects.filter(pk__in=batch).delete()
            deleted += n
    return deleted


def _sweep_once() -> int:
    close_old_connections()
    try:
        return expire_holds()
    finally:
        close_old_connections()


def _prune_once(should_stop: Callable[[], bool]) -> int:
    """Prunes the seat-change log, then the expired idempotency keys. Returns the number
    of seat changes deleted."""
    close_old_connections()
    try:
        pruned = prune_seat_changes(
            keep_days=settings.SEAT_CHANGE_RETENTION_DAYS, should_stop=should_stop
        )
        if pruned:
            logger.info(
                "Pruned %d seat changes older than %d days",
                pruned,
                settings.SEAT_CHANGE_RETENTION_DAYS,
            )
        if not should_stop():
            keys = prune_idempotency_keys()
            if keys:
                logger.info("Pruned %d expired idempotency keys", keys)
        return pruned
    finally:
        close_old_connections()


async def _prune_logged(should_stop: Callable[[], bool]) -> None:
    try:
        await sync_to_async(_prune_once, thread_sensitive=False)(should_stop)
    except Exception:
        logger.exception("Pruning old records failed; trying again next time")


async def sweep_forever(
    *,
    interval: float,
    stop: asyncio.Event | None = None,
    prune_every: float = PRUNE_EVERY_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Sweeps every `interval` seconds until `stop` is set, and prunes the seat-change log
    when it starts and then every `prune_every` seconds (by `clock`). Errors are logged,
    not fatal.

    Runs the database work in worker threads; the post-commit announcements then reach the
    channel layer through this loop, so the loop keeps a single layer connection. A prune
    runs beside the sweeps, so a long one never holds up the release of expired holds; on
    `stop` it ends after its current batch and this returns once it has.
    """
    stop = stop or asyncio.Event()
    sweep = sync_to_async(_sweep_once, thread_sensitive=False)
    pruning: asyncio.Task[None] | None = None
    last_prune: float | None = None
    leaving = False

    def should_stop() -> bool:
        return leaving or stop.is_set()

    try:
        while not stop.is_set():
            try:
                released = await sweep()
                if released:
                    logger.info("Released %d seats from expired holds", released)
            except Exception:
                logger.exception("Hold sweep failed; trying again in %.1fs", interval)
            if (pruning is None or pruning.done()) and (
                last_prune is None or clock() - last_prune >= prune_every
            ):
                last_prune = clock()
                pruning = asyncio.create_task(_prune_logged(should_stop))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        leaving = True  # also when cancelled: the prune stops after its current batch
        if pruning is not None:
            await pruning
