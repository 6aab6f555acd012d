"""The seat and counts fragments: the page, htmx responses and WebSocket frames all use these.

Rendered in Python rather than a template include because a 5,000-seat map renders them
5,000 times per page.
"""

from collections.abc import Iterable
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.utils.html import escape

from .models import SeatState, seat_place
from .payloads import PublicSeat, SeatCounts

_ACTIONABLE = {SeatState.AVAILABLE, SeatState.HELD}


def seat_name(seat: PublicSeat) -> str:
    price = Decimal(seat["price"])
    place = seat_place(seat["section"], seat["row"], seat["number"])
    return f"{place}, {settings.BOOKING_CURRENCY_SYMBOL}{price:.2f}, {seat['state']}"


def seat_html(seat: PublicSeat, *, oob: bool = False) -> str:
    """One seat as a button of the seat-map form."""
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


def counts_html(counts: SeatCounts, *, oob: bool = False) -> str:
    items = "".join(
        f'<li data-state="{state}"><span class="count-n" id="count-{state}">'
        f"{int(counts.get(state, 0))}</span> {state}</li>"
        for state in SeatState.values
    )
    swap = ' hx-swap-oob="true"' if oob else ""
    return f'<ul id="seat-counts" class="counts" aria-live="off"{swap}>{items}</ul>'


def seat_map_html(seats: list[PublicSeat], *, oob: bool = False) -> str:
    """The whole map: one labelled group per section (in order of first appearance), each a
    grid of seat_html() buttons placed by their x/y, with row labels beside it.

    Identical for every viewer, so the realtime layer can push it to resync a page.
    """
    sections: dict[str, list[PublicSeat]] = {}
    for seat in seats:
        sections.setdefault(seat["section"], []).append(seat)
    parts = []
    for index, (section, members) in enumerate(sections.items(), start=1):
        cols = max(s["x"] for s in members)
        rows = max(s["y"] for s in members)
        row_names: dict[float, str] = {}
        for s in members:
            row_names.setdefault(s["y"], s["row"])
        # Screen readers get the row from each seat's name; the labels are for the eye.
        labels = "".join(
            f'<span class="row-label" style="--y:{y}" aria-hidden="true">{escape(name)}</span>'
            for y, name in sorted(row_names.items())
        )
        buttons = "".join(seat_html(s) for s in members)
        parts.append(
            f'<div class="map-section" role="group" aria-labelledby="map-section-{index}">'
            f'<h3 class="map-section-name" id="map-section-{index}">Section {escape(section)}</h3>'
            f'<div class="map-section-body" style="--cols:{cols};--rows:{rows}">'
            f'<div class="row-labels">{labels}</div>'
            f'<div class="seat-grid">{buttons}</div>'
            f"</div></div>"
        )
    if not parts:
        parts.append('<p class="map-empty">This event has no seats yet.</p>')
    swap = ' hx-swap-oob="true"' if oob else ""
    return f'<div id="seat-map" class="seat-map"{swap}>{"".join(parts)}</div>'


def my_seats_style(seat_ids: Iterable[int], *, oob: bool = False) -> str:
    """The per-customer rule that shows the customer's own held seats as theirs.

    Keyed on the seat ids and data-state="held", so a broadcast that re-renders one of those
    seats still looks "mine" while it is held, and stops as soon as it is sold or freed.
    """
    selectors = ",".join(f'#seat-{int(pk)}[data-state="held"]' for pk in sorted(seat_ids))
    rule = f"{selectors}{{{_MINE_RULE}}}" if selectors else ""
    swap = ' hx-swap-oob="true"' if oob else ""
    return f'<style id="my-seats"{swap}>{rule}</style>'


_MINE_RULE = (
    "background:var(--mine);border-color:var(--mine);color:#fff;"
    "background-image:none;box-shadow:0 0 0 2px var(--mine-ring);cursor:pointer"
)

# Colour-blind-safe-ish hues for price tiers, cheapest first; reused when there are more.
TIER_COLOURS = ("#0e7490", "#7c3aed", "#c2410c", "#be185d", "#4338ca", "#a16207")


class PriceTier(TypedDict):
    price: Decimal
    key: str
    label: str
    colour: str
    seats: int


def price_tiers(seats: list[PublicSeat]) -> list[PriceTier]:
    """The distinct prices, cheapest first, each with its colour and the count of seats."""
    counts: dict[Decimal, int] = {}
    for seat in seats:
        price = Decimal(seat["price"])
        counts[price] = counts.get(price, 0) + 1
    return [
        {
            "price": price,
            "key": f"{price:.2f}",
            "label": f"{settings.BOOKING_CURRENCY_SYMBOL}{price:.2f}",
            "colour": TIER_COLOURS[i % len(TIER_COLOURS)],
            "seats": n,
        }
        for i, (price, n) in enumerate(sorted(counts.items()))
    ]


def tier_style(tiers: list[PriceTier]) -> str:
    """CSS giving each price tier's seats their colour via data-price (same fragments for all)."""
    rules = "".join(
        f'.seat[data-price="{escape(t["key"])}"]{{--tier:{t["colour"]}}}' for t in tiers
    )
    return f'<style id="price-tiers">{rules}</style>'


_SALE_BANNERS = {
    "draft": (
        "banner banner-draft",
        "<strong>Draft.</strong> Only staff can see this page; customers cannot book yet.",
    ),
    "closed": (
        "banner banner-closed",
        "<strong>Sales are closed.</strong> Seats can no longer be held or booked for this event.",
    ),
}


def sale_banner_html(sale_state: str, *, oob: bool = False) -> str:
    """The banner that says sales are not open (empty while on sale), swapped live."""
    swap = ' hx-swap-oob="true"' if oob else ""
    css, text = _SALE_BANNERS.get(sale_state, ("", ""))
    if not text:
        return f'<div id="sale-banner" data-sale-state="{escape(sale_state)}"{swap}></div>'
    return (
        f'<div id="sale-banner" data-sale-state="{escape(sale_state)}"{swap}>'
        f'<div class="{css}" role="note">{text}</div></div>'
    )
