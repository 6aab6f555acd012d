"""seats.services.staff: sale states."""

import pytest

from seats import services
from seats.errors import (
    Conflict,
)

pytestmark = pytest.mark.django_db


def test_event_with_holds_cannot_go_back_to_draft(alice, event, seat_ids, now):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)

    with pytest.raises(Conflict):
        services.set_sale_state(event_id=event.pk, sale_state="draft")

    event.refresh_from_db()
    assert event.sale_state == "on_sale"
    services.set_sale_state(event_id=event.pk, sale_state="closed")  # closing is fine
    event.refresh_from_db()
    assert event.sale_state == "closed"


def test_untouched_event_can_go_back_to_draft(event):
    assert services.set_sale_state(event_id=event.pk, sale_state="draft").sale_state == "draft"
