"""Seat-map generation (seats/services/seat_maps.py): where sections' seats land on the plan,
their flags, and the one path that adds seats to a draft."""

import math
from decimal import Decimal

import pytest

from events.models import Event
from seats.errors import Conflict, InvalidRequest, NotFound
from seats.models import Seat
from seats.services import seat_maps
from seats.services.seat_maps import SectionSpec, add_seats, generate_seat_map, seat_position
from tests.conftest import make_event


@pytest.fixture
def draft(venue):
    return make_event(venue, name="Draft", rows=1, seats_per_row=2, on_sale=False)


def places(event, section):
    return {
        (s.row_label, s.number): (s.x, s.y)
        for s in Seat.objects.filter(event=event, section=section)
    }


def test_straight_rows_are_centred_on_x_one_seat_width_apart(draft):
    generate_seat_map(
        event_id=draft.pk, sections=[SectionSpec("Stalls", 2, 3, Decimal("10"), x=5, y=4)]
    )

    assert places(draft, "Stalls") == {
        ("A", 1): (4, 4),
        ("A", 2): (5, 4),
        ("A", 3): (6, 4),
        ("B", 1): (4, 5),
        ("B", 2): (5, 5),
        ("B", 3): (6, 5),
    }


def test_a_curved_front_row_spans_the_curve_around_a_centre_towards_the_stage():
    spec = SectionSpec("Stalls", 5, 21, Decimal("10"), x=0, y=3, curve=60)
    radius = 20 / math.radians(60)
    centre = (0, 3 - radius)

    def polar(row, seat):
        x, y = seat_position(spec, row, seat)
        return math.dist((x, y), centre), math.degrees(math.atan2(x, y - centre[1]))

    # The front row's ends are 30 degrees either side of the middle, on the front radius.
    assert polar(0, 0)[1] == pytest.approx(-30, abs=0.1)
    assert polar(0, 20)[1] == pytest.approx(30, abs=0.1)
    assert seat_position(spec, 0, 10) == (0, 3)
    for row in range(5):
        assert polar(row, 7)[0] == pytest.approx(radius + row, abs=0.02)
        # Neighbours stay one seat width apart on every row (no overlaps, no gaps).
        a, b = seat_position(spec, row, 7), seat_position(spec, row, 8)
        assert math.dist(a, b) == pytest.approx(1, abs=0.02)


def test_a_section_on_the_audiences_left_turned_by_a_positive_angle_faces_the_stage():
    box = SectionSpec("Box Left", 2, 4, Decimal("120"), x=-15, y=2, angle=90)

    front = [seat_position(box, 0, n) for n in range(4)]
    back = [seat_position(box, 1, n) for n in range(4)]

    # Along the side wall (the row runs away from the stage), the back row against the wall.
    assert [x for x, _ in front] == [-15] * 4
    assert [y for _, y in front] == sorted(y for _, y in front)
    assert all(bx == -16 for bx, _ in back)
    mirror = SectionSpec("Box Right", 2, 4, Decimal("120"), x=15, y=2, angle=-90)
    assert all(seat_position(mirror, 1, n)[0] == 16 for n in range(4))


def test_sections_without_a_position_stack_behind_the_ones_before(draft):
    generate_seat_map(
        event_id=draft.pk,
        sections=[
            SectionSpec("Front", 3, 2, Decimal("10"), y=2),
            SectionSpec("Back", 1, 2, Decimal("5")),
        ],
    )

    assert {y for _, y in places(draft, "Back").values()} == {2 + 2 + 2}


def test_wheelchair_rows_get_spaces_at_both_ends_with_companion_seats_beside(draft):
    generate_seat_map(
        event_id=draft.pk,
        sections=[
            SectionSpec(
                "Stalls",
                3,
                6,
                Decimal("40"),
                wheelchair_rows=("C",),
                restricted_rows=("A", "B"),
            )
        ],
    )
    seats = Seat.objects.filter(event=draft, section="Stalls")

    assert sorted(seats.filter(wheelchair=True).values_list("row_label", "number")) == [
        ("C", 1),
        ("C", 6),
    ]
    assert sorted(seats.filter(companion=True).values_list("row_label", "number")) == [
        ("C", 2),
        ("C", 5),
    ]
    assert set(seats.filter(restricted_view=True).values_list("row_label", flat=True)) == {
        "A",
        "B",
    }
    assert seats.filter(restricted_view=True).count() == 12


@pytest.mark.parametrize(
    "spec, error",
    [
        (SectionSpec("S", 2, 3, Decimal("1"), wheelchair_rows=("C",)), "has rows A-B, not C"),
        (SectionSpec("S", 2, 3, Decimal("1"), restricted_rows=("Z",)), "not Z"),
        (SectionSpec("S", 2, 3, Decimal("1000000")), "0 to 999999.99"),
        (SectionSpec("S", 2, 3, Decimal("1.005")), "whole cents"),
        (SectionSpec("S", 2, 3, Decimal("1"), curve=181), "curve is 0-180"),
        (SectionSpec("S", 2, 3, Decimal("1"), x=math.inf), "position must be a number"),
        (SectionSpec("S", 2, 3, Decimal("1"), y=10_001), "within ±10,000 seat widths"),
        (SectionSpec(" ", 2, 3, Decimal("1")), "needs a name"),
        (SectionSpec("S", 201, 3, Decimal("1")), "1-200 rows"),
    ],
)
def test_bad_sections_are_refused_and_nothing_is_created(draft, spec, error):
    with pytest.raises(InvalidRequest, match=error):
        generate_seat_map(
            event_id=draft.pk, sections=[SectionSpec("Fine", 1, 1, Decimal("1")), spec]
        )

    assert draft.seats.count() == 2


def test_the_seat_limit_counts_the_seats_already_on_the_map(draft, monkeypatch):
    monkeypatch.setattr(seat_maps, "MAX_SEATS_PER_EVENT", 5)

    with pytest.raises(InvalidRequest, match="At most 5 seats per event"):
        generate_seat_map(event_id=draft.pk, sections=[SectionSpec("B", 1, 4, Decimal("1"))])
    generate_seat_map(event_id=draft.pk, sections=[SectionSpec("B", 1, 3, Decimal("1"))])

    assert draft.seats.count() == 5


def test_add_seats_refuses_places_already_on_the_map_and_counts_what_it_adds(draft):
    def seat(row, number):
        return Seat(
            event_id=draft.pk,
            section="A",
            row_label=row,
            number=number,
            x=9,
            y=9,
            price=Decimal("5"),
        )

    with pytest.raises(Conflict, match="Already on the map: A-A-2"):
        add_seats(event_id=draft.pk, seats=[seat("B", 1), seat("A", 2)])
    with pytest.raises(Conflict, match="given once"):
        add_seats(event_id=draft.pk, seats=[seat("B", 1), seat("B", 1)])
    assert draft.seats.count() == 2

    assert add_seats(event_id=draft.pk, seats=[seat("B", 1), seat("B", 2)]) == 2
    draft.refresh_from_db()
    assert draft.seats_available == 4


def test_seats_are_added_only_to_drafts(event):
    with pytest.raises(Conflict, match="only be added while the event is a draft"):
        generate_seat_map(event_id=event.pk, sections=[SectionSpec("New", 1, 1, Decimal("1"))])
    with pytest.raises(NotFound):
        generate_seat_map(event_id=event.pk + 1000, sections=[])
    assert not Seat.objects.filter(section="New").exists()
    assert Event.objects.get(pk=event.pk).seats_available == 12
