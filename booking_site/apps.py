"""The site's own app config: connects what every process needs, web or command."""

from django.apps import AppConfig


class BookingSiteConfig(AppConfig):
    name = "booking_site"
    label = "booking_site"

    def ready(self) -> None:
        # A user saved or deleted in any process (the admin, `changepassword`, the sweeper)
        # drops that user's cached copy; the receivers connect on import.
        from . import auth_cache  # noqa: F401
