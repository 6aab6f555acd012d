"""ASGI entry point: HTTP through Django, WebSockets through Channels, lifespan for the
in-process hold sweeper (embedded default)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "booking_site.settings")
django_asgi_app = get_asgi_application()

from realtime.asgi import build_application  # noqa: E402  (needs Django set up first)

application = build_application(django_asgi_app)
