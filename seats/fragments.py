"""The seat and counts fragments: the page, htmx responses and WebSocket frames all use these.

Rendered in Python rather than a template include because a 5,000-seat map renders them
5,000 times per page.
"""

from decimal import Decimal

from django.conf import settings
from django.utils.html import escape

from .models import SeatState

_ACTIONABLE = {SeatState.AVAILABLE, SeatState.HELD}


def seat_name(seat: dict) -> str:
    price = Decimal(seat["price"])
    return (
        f"Section {seat['section']}, row {seat['row']}, seat {seat['number']}, "
        f"{settings.BOOKING_CURRENCY_SYMBOL}{price:.2f}, {seat['state']}"
    )


def seat_html(seat: dict, *, oob: bool = False) -> str:
    """One seat as a button of the seat-map form. `seat` is seats.changes.public_seat()."""
    state = seat["state"]
    disabled = "" if state in _ACTIONABLE else ' aria-disabled="true"'
    swap = ' hx-swap-oob="true"' if oob else ""
    name = escape(seat_name(seat))
    return (
        f'<button type="submit" name="seat" value="{seat["id"]}" id="seat-{seat["id"]}" '
        f'class="seat" data-state="{state}" data-price="{escape(seat["price"])}" '
        f'style="--x:{seat["x"]};--y:{seat["y"]}" aria-label="{name}" title="{name}"'
        f"{disabled}{swap}>{seat['number']}</button>"
    )


def counts_html(counts: dict, *, oob: bool = False) -> str:
    items = "".join(
        f'<li data-state="{state}"><span class="count-n" id="count-{state}">'
        f"{int(counts.get(state, 0))}</span> {state}</li>"
        for state in SeatState.values
    )
    swap = ' hx-swap-oob="true"' if oob else ""
    return f'<ul id="seat-counts" class="counts" aria-live="off"{swap}>{items}</ul>'
