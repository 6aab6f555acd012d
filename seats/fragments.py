"""The seat and counts fragments: the page, htmx responses and WebSocket frames all use these.

Rendered in Python rather than a template include because a 5,000-seat map renders them
5,000 times per page.
"""

import functools
import html
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.utils.html import escape

from .models import SeatFeature, SeatState, seat_place
from .payloads import PublicSeat, SeatCounts

_ACTIONABLE = {SeatState.AVAILABLE, SeatState.HELD}

# Plan units: a seat's x/y are in seat widths; the page draws one seat width as --u pixels at
# zoom 1 (seatmap.css). Labels sit one seat width beyond a row's end seats.
_LABEL_GAP = 1.0
_SECTION_MARGIN = 0.75  # around a section's seats and labels, for its overview region
_ROW_MARGIN = 0.3  # around a row's seats: room for a seat's focus ring and feature mark
_STAGE_DEPTH = 3.0


def seat_name(seat: PublicSeat) -> str:
    """The seat's accessible name: place, price, features, state.

    "Section A, row 3, seat 12, €40.00, wheelchair space, available". The state is the
    public one; a viewer's own held seats are renamed "yours" by seatmap.js, since this
    fragment is the same for every viewer.
    """
    place = seat_place(seat["section"], seat["row"], seat["number"])
    features = "".join(f", {_FEATURE_LABELS[code]}" for code in seat["features"])
    return f"{place}, {_price_text(seat['price'])}{features}, {seat['state']}"


@functools.lru_cache(maxsize=256)
def _price_key(price: str) -> str:
    """A price as data-price and tier_style write it: "40" -> "40.00"."""
    return html.escape(f"{Decimal(price):.2f}")


def _price_text(price: str) -> str:
    return f"{settings.BOOKING_CURRENCY_SYMBOL}{_price_key(price)}"


_FEATURE_LABELS = {str(code): str(label) for code, label in SeatFeature.choices}
# One letter per feature in data-f, so a 20,000-seat map carries a few bytes per featured seat.
_FEATURE_MARKS: dict[str, str] = {
    SeatFeature.WHEELCHAIR: "w",
    SeatFeature.COMPANION: "c",
    SeatFeature.RESTRICTED_VIEW: "r",
}


def _num(value: float) -> str:
    """A plan coordinate, short: 3 -> "3", 2.5 -> "2.5", 1/3 -> "0.33"."""
    return f"{round(value, 2):g}"


def seat_html(seat: PublicSeat, *, oob: bool = False) -> str:
    """One seat as a button of the seat-map form, placed at its x/y on the plan."""
    state = seat["state"]
    disabled = "" if state in _ACTIONABLE else ' aria-disabled="true"'
    swap = ' hx-swap-oob="true"' if oob else ""
    marks = "".join(_FEATURE_MARKS[code] for code in seat["features"])
    features = f' data-f="{marks}"' if marks else ""
    # html.escape: the same escaping as Django's, without its SafeString work, 20,000 times.
    return (
        f'<button name="seat" value="{seat["id"]}" id="seat-{seat["id"]}" '
        f'class="seat" data-state="{state}" data-price="{_price_key(seat["price"])}"{features} '
        f'style="--x:{_num(seat["x"])};--y:{_num(seat["y"])}" '
        f'aria-label="{html.escape(seat_name(seat))}" tabindex="-1"{disabled}{swap}>'
        f"{seat['number']}</button>"
    )


def counts_html(counts: SeatCounts, *, oob: bool = False) -> str:
    items = "".join(
        f'<li data-state="{state}"><span class="count-n" id="count-{state}">'
        f"{int(counts.get(state, 0))}</span> {state}</li>"
        for state in SeatState.values
    )
    swap = ' hx-swap-oob="true"' if oob else ""
    return f'<ul id="seat-counts" class="counts" aria-live="off"{swap}>{items}</ul>'


class _Box:
    """A rectangle on the plan, grown to hold points."""

    def __init__(self) -> None:
        self.left = self.top = math.inf
        self.right = self.bottom = -math.inf

    def add(self, x: float, y: float, pad: float = 0.5) -> None:
        self.left, self.right = min(self.left, x - pad), max(self.right, x + pad)
        self.top, self.bottom = min(self.top, y - pad), max(self.bottom, y + pad)

    def grow(self, by: float) -> None:
        self.left, self.top, self.right, self.bottom = (
            self.left - by,
            self.top - by,
            self.right + by,
            self.bottom + by,
        )

    def style(self, prefix: str = "") -> str:
        p = prefix
        return (
            f"--{p}l:{_num(self.left)};--{p}t:{_num(self.top)};"
            f"--{p}w:{_num(self.right - self.left)};--{p}h:{_num(self.bottom - self.top)}"
        )


def _row_ends(row: list[PublicSeat]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where a row's two labels go: one seat width beyond its first and its last seat, along
    the row (so they continue a curved or angled row and never sit on a seat)."""
    first, last = row[0], row[-1]
    if len(row) > 1:
        after_first, before_last = row[1], row[-2]
        dx, dy = first["x"] - after_first["x"], first["y"] - after_first["y"]
        ex, ey = last["x"] - before_last["x"], last["y"] - before_last["y"]
    else:
        dx, dy, ex, ey = -1.0, 0.0, 1.0, 0.0
    start_len, end_len = math.hypot(dx, dy) or 1.0, math.hypot(ex, ey) or 1.0
    return (
        (first["x"] + dx / start_len * _LABEL_GAP, first["y"] + dy / start_len * _LABEL_GAP),
        (last["x"] + ex / end_len * _LABEL_GAP, last["y"] + ey / end_len * _LABEL_GAP),
    )


def _centre(seats: list[PublicSeat]) -> tuple[float, float]:
    return (
        sum(s["x"] for s in seats) / len(seats),
        sum(s["y"] for s in seats) / len(seats),
    )


def _price_label(prices: list[Decimal]) -> str:
    low, high = min(prices), max(prices)
    symbol = settings.BOOKING_CURRENCY_SYMBOL
    return f"{symbol}{low:.2f}" if low == high else f"{symbol}{low:.2f}–{symbol}{high:.2f}"


def _section_html(index: int, section: str, members: list[PublicSeat], plan: _Box) -> str:
    rows: dict[str, list[PublicSeat]] = {}
    for seat in members:
        rows.setdefault(seat["row"], []).append(seat)
    box = _Box()
    row_parts = []
    for name, row in rows.items():
        row.sort(key=lambda s: s["number"])
        # Each row is a box of its own (its seats are placed from its corner), so a swapped
        # seat lays out only its row, and rows out of view are skipped (seatmap.css).
        row_box = _Box()
        for seat in row:
            row_box.add(seat["x"], seat["y"])
        # Screen readers get the row from each seat's name; the labels are for the eye.
        labels = []
        for x, y in _row_ends(row):
            row_box.add(x, y)
            labels.append(
                f'<span class="rl" style="--x:{_num(x)};--y:{_num(y)}">{escape(name)}</span>'
            )
        box.add(row_box.left, row_box.top, pad=0)
        box.add(row_box.right, row_box.bottom, pad=0)
        row_box.grow(_ROW_MARGIN)
        row_parts.append(
            f'<div class="row" style="{row_box.style("r")}">'
            f"{labels[0]}{''.join(seat_html(s) for s in row)}{labels[1]}</div>"
        )
    # The name goes behind the back row, away from the stage, clear of the seats however
    # the section is turned (the text stays level).
    ordered = list(rows.values())
    front, back = ordered[0], ordered[-1]
    (fx, fy), (bx, by) = _centre(front), _centre(back)
    away = math.hypot(bx - fx, by - fy)
    ux, uy = ((bx - fx) / away, (by - fy) / away) if away > 0.5 else (0.0, 1.0)
    half_width = 0.25 * len(f"Section {section}") + 0.3
    clear = 1.1 + abs(ux) * half_width + abs(uy) * 0.1
    name_x, name_y = bx + ux * clear, by + uy * clear
    box.add(name_x - half_width, name_y, pad=0.5)
    box.add(name_x + half_width, name_y, pad=0.5)
    box.grow(_SECTION_MARGIN)
    plan.add(box.left, box.top, pad=0)
    plan.add(box.right, box.bottom, pad=0)

    prices = [Decimal(s["price"]) for s in members]
    tier = max(set(prices), key=prices.count)
    free = sum(1 for s in members if s["state"] == SeatState.AVAILABLE)
    title = f"Section {escape(section)}"
    return (
        f'<div class="sec" role="group" aria-labelledby="sec-{index}" data-sec="{index}" '
        f'style="{box.style()}">'
        f'<div class="zone" data-price="{tier:.2f}" aria-hidden="true">'
        f'<span class="zone-name">{title}</span>'
        f'<span class="zone-price">{escape(_price_label(prices))}</span>'
        f'<span class="zone-free"><b>{free:,}</b> free</span></div>'
        f'<h3 class="sec-name" id="sec-{index}" style="--x:{_num(name_x)};--y:{_num(name_y)}">'
        f"{title}</h3>"
        f"{''.join(row_parts)}</div>"
    )


def seat_map_html(seats: list[PublicSeat], *, oob: bool = False) -> str:
    """The whole venue plan: the stage at (0, 0), then per section (in order of first
    appearance) a labelled group holding its overview region (name, price, free seats), its
    name behind the back row, and its rows: each row's seat_html() buttons between two row
    labels placed one seat width beyond the row's ends. Everything is placed by plan
    coordinates in CSS custom properties; seatmap.css and seatmap.js draw and zoom it.

    Identical for every viewer, so the realtime layer can push it to resync a page.
    """
    swap = ' hx-swap-oob="true"' if oob else ""
    if not seats:
        return (
            f'<div id="seat-map" class="seat-map seat-map-empty"{swap}>'
            f'<p class="map-empty">This event has no seats yet.</p></div>'
        )
    sections: dict[str, list[PublicSeat]] = {}
    for seat in seats:
        sections.setdefault(seat["section"], []).append(seat)
    plan = _Box()
    parts = [
        _section_html(index, section, members, plan)
        for index, (section, members) in enumerate(sections.items(), start=1)
    ]
    # The stage: its front edge on y = 0, centred on x = 0, as wide as the middle of the hall.
    half = max(4.0, min(abs(plan.left), abs(plan.right)) * 0.6)
    stage = _Box()
    stage.add(-half, -_STAGE_DEPTH, pad=0)
    stage.add(half, 0, pad=0)
    plan.add(stage.left, stage.top, pad=0)
    plan.add(stage.right, stage.bottom, pad=0)
    plan.grow(1.0)
    return (
        f'<div id="seat-map" class="seat-map" style="{plan.style("p")}"{swap}>'
        f'<div class="map-view"><div class="plan">'
        f'<div class="stage" style="{stage.style()}" aria-hidden="true"><span>Stage</span></div>'
        f"{''.join(parts)}</div></div></div>"
    )


def my_seats_style(seat_ids: Iterable[int], *, oob: bool = False) -> str:
    """The per-customer rule that shows the customer's own held seats as theirs.

    Keyed on the seat ids and data-state="held", so a broadcast that re-renders one of those
    seats still looks "mine" while it is held, and stops as soon as it is sold or freed.
    """
    ids = sorted(int(pk) for pk in seat_ids)
    selectors = ",".join(f'#seat-{pk}[data-state="held"]' for pk in ids)
    rule = f"{selectors}{{{_MINE_RULE}}}" if selectors else ""
    swap = ' hx-swap-oob="true"' if oob else ""
    # data-seats: seatmap.js names these seats "yours" rather than "held".
    listed = ",".join(str(pk) for pk in ids)
    return f'<style id="my-seats" data-seats="{listed}"{swap}>{rule}</style>'


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


def _mix(colour: str, share: float, other: str) -> str:
    """`share` of `colour` mixed with `other` (both #rrggbb), as #rrggbb."""
    a = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(other[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = (round(x * share + y * (1 - share)) for x, y in zip(a, b, strict=True))
    return "#" + "".join(f"{value:02x}" for value in mixed)


def tier_style(tiers: list[PriceTier]) -> str:
    """CSS giving each price tier's seats and overview regions their colour via data-price
    (the same fragments for all). A seat's colours are plain values, not var()/color-mix():
    every seat has its own inline position, so the browser styles each one from scratch, and
    plain values keep that cheap on a 20,000-seat map."""
    rules, far = [], []
    for t in tiers:
        key, colour = escape(t["key"]), t["colour"]
        rules.append(
            f'.seat[data-price="{key}"]{{--tier:{colour};border-color:{colour};'
            f"background:{_mix(colour, 0.13, '#ffffff')};color:{_mix(colour, 0.75, '#000000')}}}"
            f'.zone[data-price="{key}"]{{--tier:{colour}}}'
        )
        # Zoomed far out a seat is a dot in its tier's colour (seatmap.css, .map-far).
        far.append(f'.map-far .seat[data-price="{key}"]{{background:{colour}}}')
    return (
        f'<style id="price-tiers">{"".join(rules)}'
        f"@media (scripting:enabled){{{''.join(far)}}}</style>"
    )


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
