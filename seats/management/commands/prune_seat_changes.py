"""Deletes seat changes past the retention window (the worker also does this hourly)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from seats.sweeper import prune_seat_changes


class Command(BaseCommand):
    help = (
        "Deletes seat changes (the audit log viewers catch up from) older than --keep-days, "
        "in small batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keep-days",
            type=int,
            default=settings.SEAT_CHANGE_RETENTION_DAYS,
            help="Days of changes to keep (default SEAT_CHANGE_RETENTION_DAYS: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keep_days: int = options["keep_days"]
        if keep_days < 1:
            raise CommandError("--keep-days must be at least 1.")
        deleted = prune_seat_changes(keep_days=keep_days)
        self.stdout.write(f"Deleted {deleted} seat changes older than {keep_days} days.")
