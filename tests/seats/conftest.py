import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import Client

from events.models import Event
from realtime.publish import event_group
from seats.models import Booking, BookingSeat, Hold, Seat, SeatChange


@pytest.fixture(params=["in-database", "python"])
def booking_path(request, settings):
    """Runs the test through both implementations of book_seats: the database function
    (PostgreSQL) and the Python service. On SQLite both runs take the Python path."""
    settings.BOOKINGS_IN_DATABASE = request.param == "in-database"
    return request.param


@pytest.fixture
def python_bookings(settings):
    """book_seats through the Python service even on PostgreSQL: for tests that instrument
    its steps (hooks between its statements, its row locks taken away), which a single
    database statement does not have."""
    settings.BOOKINGS_IN_DATABASE = False


@pytest.fixture
def db_state():
    """Returns a function that snapshots everything a booking request could change, so a
    test can assert that a refused request changed nothing."""

    def snapshot() -> dict:
        return {
            "seats": list(Seat.objects.order_by("pk").values_list("pk", "state", "hold_id")),
            "versions": list(Event.objects.order_by("pk").values_list("pk", "version")),
            "holds": list(Hold.objects.order_by("pk").values_list("pk", "expires_at", "ended_at")),
            "bookings": list(Booking.objects.order_by("pk").values_list("pk", "cancelled_at")),
            "booking_seats": list(
                BookingSeat.objects.order_by("pk").values_list("pk", "seat_id", "active")
            ),
            "changes": SeatChange.objects.count(),
        }

    return snapshot


@pytest.fixture
def client_for():
    """Returns a function giving a test client logged in as the user."""

    def make(user, **kwargs) -> Client:
        client = Client(**kwargs)
        client.force_login(user)
        return client

    return make


@pytest.fixture
def customers(db):
    """Fifty customers (bulk-created: password hashing would take most of the test)."""
    User = get_user_model()
    User.objects.bulk_create([User(username=f"customer{i:02d}", password="!") for i in range(50)])
    return list(User.objects.filter(username__startswith="customer").order_by("username"))


@pytest.fixture
def in_memory_layer(settings):
    """The in-memory channel layer, whatever REDIS_URL says, emptied afterwards."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    yield layer
    async_to_sync(layer.flush)()


@pytest.fixture
def event_listener(in_memory_layer):
    """Returns a function subscribing a channel to an event's group; calling the returned
    `received()` collects every message delivered to it so far."""

    def listen(event_id: int):
        channel = async_to_sync(in_memory_layer.new_channel)()
        async_to_sync(in_memory_layer.group_add)(event_group(event_id), channel)

        async def drain() -> list[dict]:
            messages = []
            while True:
                try:
                    # The in-memory layer queues group messages synchronously inside
                    # group_send, so anything announced is already waiting here.
                    messages.append(
                        await asyncio.wait_for(in_memory_layer.receive(channel), timeout=0.2)
                    )
                except TimeoutError:
                    return messages

        return async_to_sync(drain)

    return listen
