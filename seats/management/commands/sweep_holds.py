"""Releases expired holds: once, or in a loop until SIGTERM/SIGINT (the Procfile's worker),
which also prunes the seat-change log hourly."""

import asyncio
import contextlib
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from seats.services import expire_holds
from seats.sweeper import sweep_forever


class Command(BaseCommand):
    help = (
        "Releases the seats of expired holds, once or (with --loop) every --interval seconds; "
        "the loop also deletes seat changes older than SEAT_CHANGE_RETENTION_DAYS, hourly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Keep sweeping (and pruning old seat changes) until SIGTERM or SIGINT.",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.HOLD_SWEEP_INTERVAL,
            help="Seconds between sweeps with --loop (default HOLD_SWEEP_INTERVAL).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["loop"]:
            released = expire_holds()
            self.stdout.write(f"Released {released} seats from expired holds.")
            return
        interval: float = options["interval"]
        if not 0 < interval <= 3600:
            raise CommandError("--interval must be more than 0 and at most 3600 seconds.")
        self.stdout.write(
            f"Sweeping expired holds every {interval:g}s and pruning seat changes older than "
            f"{settings.SEAT_CHANGE_RETENTION_DAYS} days hourly; stop with SIGTERM."
        )
        self.stdout.flush()
        asyncio.run(self._sweep_until_signalled(interval))
        self.stdout.write("Sweeper stopped.")

    async def _sweep_until_signalled(self, interval: float) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.getsignal(sig) for sig in signals}
        for sig in signals:
            try:
                loop.add_signal_handler(sig, stop.set)
            except NotImplementedError:  # Windows event loops: fall back to plain handlers.
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        try:
            # The sweep in progress finishes; the loop then sees `stop` and returns.
            await sweep_forever(interval=interval, stop=stop)
        finally:
            for sig in signals:
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)
                signal.signal(sig, previous[sig])
