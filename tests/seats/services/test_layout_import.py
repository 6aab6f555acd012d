"""Venue layouts imported from CSV or JSON (seats/services/layout_import.py)."""

import json
from decimal import Decimal

import pytest

from seats.errors import Conflict
from seats.models import Seat
from seats.services import seat_maps
from seats.services.layout_import import (
    LayoutError,
    guess_format,
    import_layout,
    parse_layout,
)
from tests.conftest import make_event

GOOD_CSV = """section,row,number,x,y,price,attributes
Stalls,A,1,-0.5,3,45.00,wheelchair
Stalls,A,2,0.5,3,45.00,companion
Box Left,A,1,-14,1.5,120,restricted_view;companion

Box Left,A,2,-14,2.5,120,
"""


@pytest.fixture
def draft(venue):
    return make_event(venue, name="Draft", rows=1, seats_per_row=1, on_sale=False)


def problems(text, format="csv"):
    with pytest.raises(LayoutError) as caught:
        parse_layout(text, format=format)
    return caught.value.problems


def test_a_csv_layout_is_imported_with_its_places_prices_and_attributes(draft):
    seats = parse_layout(GOOD_CSV, format="csv")
    created = import_layout(event_id=draft.pk, seats=seats)

    assert created == 4
    imported = {
        s.label: (s.x, s.y, s.price, s.features)
        for s in Seat.objects.filter(event=draft).exclude(section="A")
    }
    assert imported == {
        "Stalls-A-1": (-0.5, 3, Decimal("45.00"), ["wheelchair"]),
        "Stalls-A-2": (0.5, 3, Decimal("45.00"), ["companion"]),
        "Box Left-A-1": (-14, 1.5, Decimal("120.00"), ["companion", "restricted_view"]),
        "Box Left-A-2": (-14, 2.5, Decimal("120.00"), []),
    }
    draft.refresh_from_db()
    assert draft.seats_available == 5


def test_a_json_layout_reads_the_same_as_csv():
    data = [
        {
            "section": "Stalls",
            "row": "A",
            "number": 1,
            "x": -0.5,
            "y": 3,
            "price": "45.00",
            "attributes": ["wheelchair"],
        },
        {
            "section": "Stalls",
            "row": "A",
            "number": 2,
            "x": 0.5,
            "y": 3,
            "price": 45,
            "attributes": "companion",
        },
    ]

    seats = parse_layout(json.dumps(data, indent=2), format="json")

    assert [(s.line, s.row, s.number, s.x, s.price, set(s.features)) for s in seats] == [
        (2, "A", 1, -0.5, Decimal("45.00"), {"wheelchair"}),
        (13, "A", 2, 0.5, Decimal("45"), {"companion"}),
    ]


def test_every_bad_line_is_reported_with_its_number():
    text = """section,row,number,x,y,price,attributes
Stalls,A,1,0,3,45,
Stalls,A,0,1,3,45,
Stalls,A,2,left,3,45,
Stalls,A,3,2,3,-1,
Stalls,A,4,3,3,45,sofa
,A,5,4,3,45,
Stalls,A,6,5,3
Stalls,A,1,6,3,45,
Stalls,A,7,0,3,45,
"""
    found = problems(text)

    assert [line for line, _ in found] == [3, 4, 5, 6, 7, 8, 9, 10]
    text_of = dict(found)
    assert "number must be a whole number" in text_of[3]
    assert "x must be a number" in text_of[4]
    assert "price must be 0 to 999999.99" in text_of[5]
    assert "unknown attribute sofa" in text_of[6]
    assert "section missing" in text_of[7]
    assert "5 values where the header has 7" in text_of[8]
    assert "Stalls-A-1 is given twice (first on line 2)" in text_of[9]
    assert "same spot as line 2" in text_of[10]


def test_bad_json_names_the_line_of_the_bad_seat():
    text = (
        '[\n  {"section": "S", "row": "A", "number": 1, "x": 0, "y": 1, "price": 5},\n'
        '  {"section": "S", "row": "A", "number": 2, "x": 1, "y": 1, "price": "five"},\n'
        '  {"section": "S", "row": "A", "number": 3, "x": 2, "y": 1, "price": 5, "seat": 1},\n'
        '  {"section": "S", "row": "A" "number": 4}\n]'
    )

    found = problems(text, "json")

    assert [line for line, _ in found] == [3, 4, 5]
    assert "price must be an amount" in found[0][1]
    assert "unknown field seat" in found[1][1]
    assert "not valid JSON" in found[2][1]


@pytest.mark.parametrize(
    "text, format, message",
    [
        ("", "csv", "no seats in the file"),
        ("section,row,number\nS,A,1\n", "csv", "missing x, y, price"),
        ('{"seats": []}', "json", "array of seats"),
        ("[1, 2]", "json", "each seat is an object"),
    ],
)
def test_a_file_that_is_not_a_layout_is_refused_whole(text, format, message):
    assert message in " ".join(p for _, p in problems(text, format))


def test_a_layout_bigger_than_the_seat_limit_is_refused(monkeypatch):
    monkeypatch.setattr("seats.services.layout_import.MAX_SEATS_PER_EVENT", 3)
    rows = "".join(f"S,A,{n},{n},1,5,\n" for n in range(1, 6))

    found = problems("section,row,number,x,y,price,attributes\n" + rows)

    assert found[-1] == (5, "more than 3 seats; stopped reading")


def test_nothing_is_imported_when_a_seat_is_already_on_the_map(draft):
    seats = parse_layout(GOOD_CSV + "A,A,1,9,9,5,\n", format="csv")

    with pytest.raises(LayoutError) as caught:
        import_layout(event_id=draft.pk, seats=seats)

    assert caught.value.problems == [(7, "A-A-1 is already on the map")]
    assert draft.seats.count() == 1


def test_imports_go_only_to_drafts_and_within_the_seat_limit(draft, event, monkeypatch):
    seats = parse_layout(GOOD_CSV, format="csv")
    with pytest.raises(Conflict, match="draft"):
        import_layout(event_id=event.pk, seats=seats)
    monkeypatch.setattr(seat_maps, "MAX_SEATS_PER_EVENT", 4)
    with pytest.raises(Exception, match="At most 4 seats per event"):
        import_layout(event_id=draft.pk, seats=seats)

    assert draft.seats.count() == 1
    assert event.seats.count() == 12


def test_the_format_is_guessed_from_the_name_or_the_first_character():
    assert guess_format("hall.JSON", "x") == "json"
    assert guess_format("upload", "  [{}]") == "json"
    assert guess_format("hall.csv", "section,row") == "csv"
