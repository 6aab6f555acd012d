"""Helpers shared by the service tests."""

from events.models import Event
from seats.models import Seat, SeatChange


def states(seat_ids):
    return [Seat.objects.get(pk=pk).state for pk in seat_ids]


def version(event):
    return Event.objects.get(pk=event.pk).version


def changes_at(event, at_version):
    return list(
        SeatChange.objects.filter(event=event, version=at_version)
        .order_by("seat_id")
        .values_list("seat_id", "from_state", "to_state", "actor_id", "cause")
    )
