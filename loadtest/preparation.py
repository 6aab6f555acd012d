"""The load test's own database work (synchronous ORM, outside the event loop): an event to
sell, customers with sessions, and the database's word on double sales afterwards.

Only usable when this process shares the server's DATABASE_URL (and SECRET_KEY, for the
sessions); against another server, pass --event and --users-file instead.
"""

import math
import secrets
from datetime import timedelta
from decimal import Decimal
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import SessionBase
from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone
from django.utils.crypto import get_random_string

from events.models import Event, Venue
from seats.models import BookingSeat, Seat
from seats.services import SectionSpec, generate_seat_map, set_sale_state

SEATS_PER_ROW = 25
MAX_ROWS_PER_SECTION = 200


def sections_for(seat_count: int) -> list[SectionSpec]:
    """Sections totalling exactly `seat_count` seats: full rows of 25, a last short row.
    Section "A" is nearest the stage; the best seats are in its front rows."""
    if seat_count < 1:
        raise ValueError("An event needs at least one seat.")
    per_row = min(SEATS_PER_ROW, seat_count)
    full_rows, remainder = divmod(seat_count, per_row)
    specs = []
    prices = (Decimal("90.00"), Decimal("60.00"), Decimal("40.00"))
    for index in range(math.ceil(full_rows / MAX_ROWS_PER_SECTION)):
        rows = min(MAX_ROWS_PER_SECTION, full_rows - index * MAX_ROWS_PER_SECTION)
        specs.append(
            SectionSpec(chr(ord("A") + index), rows, per_row, prices[min(index, len(prices) - 1)])
        )
    if remainder:
        specs.append(SectionSpec("Z", 1, remainder, prices[-1]))
    return specs


def create_event(*, seat_count: int, tag: str) -> int:
    """Creates an on-sale event of `seat_count` seats with room for the run: holds last an
    hour (none expires mid-run) and a customer may have 100 seats. Returns its id."""
    venue, _ = Venue.objects.get_or_create(name="Load-test hall", defaults={"city": "Localhost"})
    event = Event.objects.create(
        name=f"Load test {tag}",
        venue=venue,
        starts_at=timezone.now() + timedelta(days=30),
        hold_duration=timedelta(hours=1),
        max_seats_per_customer=100,
    )
    generate_seat_map(event_id=event.pk, sections=sections_for(seat_count))
    set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)
    return event.pk


def create_customers(*, count: int, tag: str, password: str | None) -> list[tuple[str, str]]:
    """Creates `count` customers and returns (username, password) pairs.

    Without a password they cannot log in through the form and get sessions from
    `session_cookies` instead: password hashing is deliberately slow, and a few hundred
    log-ins would be the whole load test.
    """
    hashed = make_password(password) if password else make_password(None)
    users = [
        get_user_model()(username=f"lt-{tag}-{n}", password=hashed) for n in range(1, count + 1)
    ]
    get_user_model().objects.bulk_create(users, batch_size=500)
    return [(user.username, password or "") for user in users]


def session_cookies(usernames: list[str]) -> list[dict[str, str]]:
    """Logged-in session and CSRF cookies for each user, written straight to the session
    store: what Django's login() would store and announce, without the password check."""
    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    users = {u.username: u for u in get_user_model().objects.filter(username__in=usernames)}
    cookies: list[dict[str, str]] = []
    for username in usernames:
        user = users[username]
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        assert session.session_key is not None  # create() saved it under a new key
        user_logged_in.send(sender=type(user), request=None, user=user)
        cookies.append(
            {
                settings.SESSION_COOKIE_NAME: session.session_key,
                # An unmasked 32-character secret is a valid cookie and header token.
                settings.CSRF_COOKIE_NAME: get_random_string(32),
            }
        )
    return cookies


def new_tag() -> str:
    return secrets.token_hex(3)


def database_matches(*, event_id: int, seat_ids: set[int]) -> bool:
    """Whether this process's database is the server's: the same event with the same seats."""
    try:
        ours = set(Seat.objects.filter(event_id=event_id).values_list("pk", flat=True))
    except DatabaseError:
        return False
    return bool(ours) and ours == seat_ids


def seats_sold_twice(*, event_id: int) -> list[int]:
    """Seats with more than one active booking line (the constraint should make it none)."""
    return sorted(
        BookingSeat.objects.filter(booking__event_id=event_id, active=True)
        .values("seat_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("seat_id", flat=True)
    )
