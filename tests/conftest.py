import os
import shutil
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils import timezone

from events.models import Event, Venue
from seats import ratelimits
from seats.services import SectionSpec, generate_seat_map
from tests.servers import ThrowawayRedis


def pytest_collection_modifyitems(config, items):
    """Skips tests whose services are missing, saying why (CI fails on any skip)."""
    is_pg = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    has_redis = bool(os.environ.get("REDIS_URL"))
    has_chromium = os.path.exists(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    for item in items:
        if "postgres" in item.keywords and not is_pg:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if "redis" in item.keywords and not has_redis:
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL"))
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(
                pytest.mark.skip(reason="needs Debian's chromium (apt-get install chromium)")
            )


def pytest_sessionfinish(session, exitstatus):
    """Removes this run's SQLite test database files (tests/settings.py: TEST NAME)."""
    name = django_settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and name:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(name + suffix).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Closes the connection pools before the test database is dropped (a pool keeps
    connections open, and PostgreSQL will not drop a database that has any)."""
    yield
    with django_db_blocker.unblock():
        for conn in connections.all():
            if getattr(conn, "pool", None):
                conn.close_pool()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Hashing a fixture user's password is most of a short test's time with the real hasher.
    # Tests whose users log in to a separate server process override this fixture.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def venue(db):
    return Venue.objects.create(name="Town Hall", city="Springfield")


def make_event(venue, *, rows=3, seats_per_row=4, price="40.00", on_sale=True, **fields):
    event = Event.objects.create(
        name=fields.pop("name", "Concert"),
        venue=venue,
        starts_at=timezone.now() + timedelta(days=30),
        **fields,
    )
    generate_seat_map(
        event_id=event.pk,
        sections=[SectionSpec("A", rows, seats_per_row, Decimal(price))],
    )
    if on_sale:
        event.sale_state = Event.SaleState.ON_SALE
        event.save(update_fields=["sale_state"])
    return event


@pytest.fixture
def event(venue):
    return make_event(venue)


@pytest.fixture
def seat_ids(event):
    return list(event.seats.order_by("pk").values_list("pk", flat=True))


def make_user(username, **fields):
    return get_user_model().objects.create_user(
        username=username, password="pw-" + username, **fields
    )


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def staff(db):
    return make_user("staff", is_staff=True, is_superuser=True)


@pytest.fixture
def on_postgres():
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def own_rate_limit_counters(settings):
    """Each test counts from zero under a cache key prefix of its own: the test database
    hands out the same ids again (SQLite), and the cache outlives a test."""
    default = settings.CACHES["default"]
    prefix = f"{default.get('KEY_PREFIX', '')}-{uuid.uuid4().hex}"
    settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": prefix}}
    # ...and with a cache that has not failed (the limiter skips one that just did).
    ratelimits._cache_failed_at = float("-inf")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def draft_event(venue):
    return make_event(venue, name="Premiere", rows=1, seats_per_row=1, on_sale=False)


@pytest.fixture
def throwaway_redis(tmp_path):
    """A Redis of the test's own, to stop, freeze and restart (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH (apt-get install redis-server)")
    redis = ThrowawayRedis(tmp_path).start()
    yield redis
    redis.stop()
