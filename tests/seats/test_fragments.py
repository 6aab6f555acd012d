"""The seat-map fragments: what the page, htmx answers and WebSocket frames draw seats with."""

import gzip
import math
import re
from decimal import Decimal

from pytest import approx

from seats.fragments import (
    my_seats_style,
    price_tiers,
    seat_html,
    seat_map_html,
    seat_name,
    tier_style,
)
from seats.payloads import PublicSeat, public_seat
from seats.services.seat_maps import SectionSpec, row_label, seat_position


def section_seats(spec: SectionSpec, *, first_id: int = 1, state: str = "available"):
    """The section's seats as the page gets them, placed by the generator's own geometry."""
    seats: list[PublicSeat] = []
    for r in range(spec.rows):
        for n in range(1, spec.seats_per_row + 1):
            x, y = seat_position(spec, r, n - 1)
            seats.append(
                public_seat(
                    id=first_id + len(seats),
                    section=spec.name,
                    row_label=row_label(r),
                    number=n,
                    x=x,
                    y=y,
                    price=spec.price,
                    state=state,
                    features=[],
                )
            )
    return seats


def props(tag: str) -> dict[str, float]:
    """The custom properties in an element's style attribute: {"--x": 1.5, ...}."""
    style = re.search(r'style="([^"]*)"', tag).group(1)
    return {k: float(v) for k, v in re.findall(r"(--\w+):([-\d.]+)", style)}


def tags(html: str, css_class: str) -> list[str]:
    return re.findall(rf'<[a-z0-9]+ [^>]*class="{css_class}"[^>]*>', html)


def one_seat(**changes) -> PublicSeat:
    seat = public_seat(
        id=7,
        section="Stalls",
        row_label="C",
        number=12,
        x=-3.25,
        y=4.5,
        price=Decimal("40"),
        state="available",
        features=[],
    )
    return {**seat, **changes}


def test_a_seat_is_a_submit_button_of_the_form_placed_at_its_x_and_y():
    html = seat_html(one_seat())

    assert html.startswith('<button name="seat" value="7" id="seat-7" class="seat" ')
    assert 'data-state="available"' in html and 'data-price="40.00"' in html
    assert props(html) == {"--x": -3.25, "--y": 4.5}
    assert 'tabindex="-1"' in html  # one seat of the map is the Tab stop: seatmap.js picks it
    assert html.endswith(">12</button>")
    # A button without a type in a form submits it; no title: the name is said once.
    assert "type=" not in html and "title=" not in html


def test_a_seat_is_named_by_place_price_features_and_state():
    seat = one_seat(features=["wheelchair", "restricted_view"], state="held")

    assert seat_name(seat) == (
        "Section Stalls, row C, seat 12, €40.00, wheelchair space, restricted view, held"
    )
    html = seat_html(seat)
    assert f'aria-label="{seat_name(seat)}"' in html
    assert 'data-f="wr"' in html  # the marks drawn on the seat


def test_sold_and_blocked_seats_are_disabled_and_a_pushed_seat_swaps_out_of_band():
    assert 'aria-disabled="true"' in seat_html(one_seat(state="sold"))
    assert 'aria-disabled="true"' in seat_html(one_seat(state="blocked"))
    assert "aria-disabled" not in seat_html(one_seat(state="held"))
    assert 'hx-swap-oob="true"' in seat_html(one_seat(), oob=True)
    assert "hx-swap-oob" not in seat_html(one_seat())


def test_seat_text_is_escaped():
    html = seat_html(one_seat(section='<b>"Box"</b>'))

    assert "<b>" not in html and "&lt;b&gt;&quot;Box&quot;" in html


def test_the_plan_holds_every_seat_once_by_section_and_row_in_seat_order():
    stalls = section_seats(SectionSpec("Stalls", 3, 5, Decimal("40"), y=2))
    circle = section_seats(SectionSpec("Circle", 2, 4, Decimal("25"), y=9), first_id=100)

    html = seat_map_html(stalls + circle[::-1])  # whatever order the seats come in

    assert html.startswith('<div id="seat-map" class="seat-map"')
    ids = [int(i) for i in re.findall(r'id="seat-(\d+)"', html)]
    assert sorted(ids) == sorted(s["id"] for s in stalls + circle)
    groups = re.findall(r'<div class="sec" role="group" aria-labelledby="(sec-\d+)"', html)
    assert groups == ["sec-1", "sec-2"]
    assert '<h3 class="sec-name" id="sec-1"' in html and ">Section Stalls</h3>" in html
    circle_rows = html[html.index("Section Circle") :].split('<div class="row"')[1:]
    assert [re.findall(r">(\d+)</button>", row) for row in circle_rows] == [
        ["1", "2", "3", "4"]
    ] * 2


def test_row_labels_sit_beyond_the_row_ends_never_on_a_seat_even_on_a_curve():
    spec = SectionSpec("Fan", 4, 9, Decimal("40"), x=3, y=4, angle=-20, curve=60)
    seats = section_seats(spec)

    html = seat_map_html(seats)

    for row_html, letter in zip(html.split('<div class="row"')[1:], "ABCD", strict=True):
        labels = [props(t) for t in tags(row_html, "rl")]
        row = [s for s in seats if s["row"] == letter]
        assert len(labels) == 2 and row_html.count(f">{letter}</span>") == 2
        for label, end, inner in ((labels[0], row[0], row[1]), (labels[1], row[-1], row[-2])):
            # One seat width on from the end seat, continuing the row away from its neighbour.
            assert math.dist((label["--x"], label["--y"]), (end["x"], end["y"])) == approx(
                1.0, abs=0.02
            )
            beyond = math.dist((label["--x"], label["--y"]), (inner["x"], inner["y"]))
            assert beyond > 1.8
            nearest = min(math.dist((label["--x"], label["--y"]), (s["x"], s["y"])) for s in seats)
            assert nearest >= 0.98


def test_each_row_is_a_box_around_its_seats_and_labels():
    seats = section_seats(SectionSpec("Fan", 3, 7, Decimal("40"), x=-2, y=3, angle=15, curve=40))

    html = seat_map_html(seats)

    rows = re.findall(r'<div class="row" style="[^"]*">.*?</div>', html)
    assert len(rows) == 3
    for row in rows:
        box = props(row)
        points = [props(t) for t in re.findall(r'<(?:button|span) [^>]*style="[^"]*"', row)]
        assert len(points) == 7 + 2
        for p in points:  # a seat or label (half a seat wide) and its focus ring fit inside
            assert box["--rl"] + 0.6 < p["--x"] < box["--rl"] + box["--rw"] - 0.6
            assert box["--rt"] + 0.6 < p["--y"] < box["--rt"] + box["--rh"] - 0.6


def test_the_stage_is_drawn_at_the_front_centre_and_the_plan_holds_everything():
    seats = section_seats(SectionSpec("Stalls", 5, 12, Decimal("40"), x=4, y=3, angle=10))

    html = seat_map_html(seats)

    stage = props(tags(html, "stage")[0])
    assert stage["--t"] + stage["--h"] == 0  # its front edge on y = 0
    assert stage["--l"] == -(stage["--w"] / 2)  # centred on x = 0
    plan = props(re.search(r'<div id="seat-map"[^>]*>', html).group(0))
    left, top = plan["--pl"], plan["--pt"]
    right, bottom = left + plan["--pw"], top + plan["--ph"]
    points = [(s["x"], s["y"]) for s in seats] + [
        (p["--x"], p["--y"]) for p in map(props, tags(html, "rl"))
    ]
    assert all(left < x < right and top < y < bottom for x, y in points)
    assert left <= stage["--l"] and stage["--t"] >= top
    section = props(tags(html, "sec")[0])
    assert all(
        section["--l"] < x < section["--l"] + section["--w"]
        and section["--t"] < y < section["--t"] + section["--h"]
        for x, y in points
    )


def test_each_section_has_an_overview_region_with_its_price_and_free_seats():
    stalls = section_seats(SectionSpec("Stalls", 2, 5, Decimal("40"), y=2))
    stalls[0]["state"] = "sold"
    stalls[1]["state"] = "held"
    stalls[2]["price"] = "55.00"
    boxes = section_seats(SectionSpec("Boxes", 1, 2, Decimal("120"), y=8), first_id=50)

    html = seat_map_html(stalls + boxes)

    zones = re.findall(r'<div class="zone"(.*?)</div>', html)
    assert zones[0].startswith(' data-price="40.00" aria-hidden="true">')
    assert "Section Stalls" in zones[0] and "€40.00–€55.00" in zones[0]
    assert "<b>8</b> free" in zones[0]
    assert "€120.00" in zones[1] and "<b>2</b> free" in zones[1]


def test_an_event_without_seats_says_so():
    assert "This event has no seats yet." in seat_map_html([])


def test_own_seats_style_lists_them_for_the_page_script_and_marks_them_while_held():
    html = my_seats_style([12, 3], oob=True)

    assert html.startswith('<style id="my-seats" data-seats="3,12" hx-swap-oob="true">')
    assert '#seat-3[data-state="held"],#seat-12[data-state="held"]{' in html
    assert my_seats_style([]) == '<style id="my-seats" data-seats=""></style>'


def test_tier_colours_are_plain_values_per_price():
    seats = [one_seat(id=1, price="40.00"), one_seat(id=2, price="95.00")]

    css = tier_style(price_tiers(seats))

    cheap = re.search(r'\.seat\[data-price="40\.00"\]\{([^}]*)\}', css).group(1)
    assert "border-color:#0e7490" in cheap and "background:#" in cheap
    assert "var(" not in cheap and "color-mix" not in cheap
    assert '.seat[data-price="95.00"]{--tier:#7c3aed;' in css
    assert '.zone[data-price="95.00"]{--tier:#7c3aed}' in css


def test_a_20000_seat_plan_stays_within_its_size_budget():
    sections = [
        SectionSpec("Floor", 40, 100, Decimal("90"), y=3),
        SectionSpec("Lower Left", 30, 40, Decimal("70"), x=-58, y=15, angle=90),
        SectionSpec("Lower Right", 30, 40, Decimal("70"), x=58, y=15, angle=-90),
        SectionSpec("Upper", 68, 200, Decimal("45"), y=48, curve=30),
    ]
    seats: list[PublicSeat] = []
    for spec in sections:
        seats += section_seats(spec, first_id=100_000 + len(seats))
    assert len(seats) == 20_000

    html = seat_map_html(seats).encode()

    # What the browser parses and what travels (the page is gzipped), per seat.
    assert len(html) / len(seats) < 240
    assert len(gzip.compress(html)) / len(seats) < 18
