import math
import re
import shlex
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from events.management.commands.create_event import Command as CreateEvent
from events.models import Event, Venue
from seats.models import Seat


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_event_prints_its_id_last_and_puts_the_seats_on_sale(db):
    out = run(
        "create_event",
        *shlex.split(
            "--name 'Jazz Night' --rows 5 --seats-per-row 8 --price 19.90 --sections 2 "
            "--hold-minutes 3 --max-seats 4 --venue 'Blue Room'"
        ),
    )

    event = Event.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert (event.name, str(event.venue), event.sale_state) == (
        "Jazz Night",
        "Blue Room",
        "on_sale",
    )
    assert (event.hold_duration.total_seconds(), event.max_seats_per_customer) == (180, 4)
    assert event.seats.count() == 40
    assert set(event.seats.values_list("state", "price")) == {("available", Decimal("19.90"))}
    # 5 rows split into sections A (3 rows) and B (2 rows).
    assert event.seats.filter(section="A").count() == 24
    assert set(event.seats.filter(section="B").values_list("row_label", flat=True)) == {"A", "B"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rows", "0"], "--rows and --seats-per-row must be at least 1"),
        (["--price", "cheap"], "--price must be a number"),
        (["--price", "-5"], "--price must be between 0 and 999999.99"),
        (["--sections", "4"], "--sections must be between 1 and 3"),
        (["--hold-minutes", "0.1"], "hold_duration"),
        (["--max-seats", "0"], "max_seats_per_customer"),
        (["--seats-per-row", "501"], "at most 500 seats"),
        (["--starts-at", "soon"], "--starts-at must be an ISO date-time"),
    ],
)
def test_create_event_rejects_bad_arguments_and_creates_nothing(db, args, message):
    base = {"--name": "Gig", "--rows": "3", "--seats-per-row": "4", "--price": "10"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))

    with pytest.raises(CommandError, match=message):
        run("create_event", *[x for pair in base.items() for x in pair])

    assert (Event.objects.count(), Venue.objects.count(), Seat.objects.count()) == (0, 0, 0)


def counts():
    return (
        Venue.objects.count(),
        Event.objects.count(),
        Seat.objects.count(),
        get_user_model().objects.count(),
    )


def test_seed_demo_twice_creates_everything_once(db):
    first = run("seed_demo")
    event = Event.objects.get()
    assert event.sale_state == "on_sale"
    assert 400 <= event.seats.count() <= 900
    assert len(set(event.seats.values_list("price", flat=True))) >= 4
    assert f"/events/{event.pk}/" in first
    assert "demo / demo-pass-2026" in first and "admin / admin-pass-2026" in first
    User = get_user_model()
    assert User.objects.get(username="demo").check_password("demo-pass-2026")
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser and admin.check_password("admin-pass-2026")
    seeded = counts()
    # Someone changed the demo password since: seeding again must not undo that.
    demo = User.objects.get(username="demo")
    demo.set_password("changed-by-hand")
    demo.save()

    second = run("seed_demo")

    assert counts() == seeded
    assert User.objects.get(username="demo").check_password("changed-by-hand")
    assert "demo / demo-pass-2026 (existing user; password left as it was)" in second
    assert f"/events/{event.pk}/" in second


def closest_pair(seats):
    """The smallest distance between two seats on the plan (a grid, so 20,000 seats is quick)."""
    cells = {}
    for x, y in seats:
        cells.setdefault((math.floor(x), math.floor(y)), []).append((x, y))
    best = math.inf
    for (cx, cy), members in cells.items():
        near = [
            p for dx in (-1, 0, 1) for dy in (-1, 0, 1) for p in cells.get((cx + dx, cy + dy), [])
        ]
        for a in members:
            best = min([best, *(math.dist(a, b) for b in near if b is not a)])
    return best


def test_the_demo_hall_has_curved_stalls_boxes_beside_the_stage_and_a_rear_circle(db):
    run("seed_demo")
    seats = Event.objects.get().seats.all()

    def where(**filters):
        return list(seats.filter(**filters).values_list("x", "y"))

    stalls, circle = where(section="Stalls"), where(section="Circle")
    boxes = where(price=Decimal("120.00"))
    # The €120 boxes are at the sides near the stage, not at the back.
    assert boxes and all(abs(x) > max(abs(sx) for sx, _ in stalls) for x, _ in boxes)
    assert max(y for _, y in boxes) < 6 < min(y for _, y in circle)
    assert {x < 0 for x, _ in boxes} == {True, False}
    # The circle is behind the stalls; the stalls' front row curves (its ends nearer the stage).
    assert min(y for _, y in circle) > max(y for _, y in stalls)
    front = dict(seats.filter(section="Stalls", row_label="A").values_list("number", "y"))
    assert front[1] < front[12] and front[24] < front[13]
    # The side balconies are turned: along a row, both x and y change.
    balcony_row = where(section="Balcony Left", row_label="A")
    assert len({x for x, _ in balcony_row}) > 1 and len({y for _, y in balcony_row}) > 1
    assert closest_pair(where()) > 0.95  # no two seats drawn on top of each other
    assert seats.filter(wheelchair=True).count() >= 2
    assert seats.filter(companion=True).count() >= 2
    assert seats.filter(restricted_view=True).exists()
    assert not seats.filter(wheelchair=True, restricted_view=True).exists()


def test_seed_demo_big_adds_a_stadium_of_twenty_thousand_seats_once(db):
    first = run("seed_demo", "--big")
    stadium = Event.objects.get(name="Stadium Night")
    assert stadium.sale_state == "on_sale"
    assert stadium.seats.count() == stadium.seats_available == 20_000
    assert closest_pair(stadium.seats.values_list("x", "y")) > 0.95
    assert f"/events/{stadium.pk}/" in first and "Demo Night" in first

    run("seed_demo", "--big")

    assert Event.objects.count() == 2
    assert Seat.objects.count() == 20_000 + Event.objects.get(name="Demo Night").seats.count()


def test_create_event_takes_sections_with_their_prices_positions_angles_and_curves(db):
    out = run(
        "create_event",
        "--name",
        "Gala",
        "--section",
        "Stalls:rows=3,seats=9,price=45,curve=60,y=3,wheelchair=C",
        "--section",
        "Box Left:rows=2,seats=4,price=120,x=-15,y=3,angle=90,restricted=b",
        "--section",
        "Circle:rows=2,seats=10,price=30.50",
    )

    event = Event.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert event.sale_state == "on_sale"
    prices = dict(event.seats.values_list("section", "price").distinct())
    assert prices == {
        "Stalls": Decimal("45.00"),
        "Box Left": Decimal("120.00"),
        "Circle": Decimal("30.50"),
    }
    assert "Stalls 45.00, Box Left 120.00, Circle 30.50" in out
    stalls_front = dict(
        event.seats.filter(section="Stalls", row_label="A").values_list("number", "y")
    )
    assert stalls_front[5] == 3 and stalls_front[1] < 3  # curved towards the stage
    box = event.seats.filter(section="Box Left")
    assert set(box.values_list("x", flat=True)) == {-15, -16}  # along the left wall
    assert set(box.filter(restricted_view=True).values_list("row_label", flat=True)) == {"B"}
    assert sorted(
        event.seats.filter(wheelchair=True).values_list("section", "row_label", "number")
    ) == [("Stalls", "C", 1), ("Stalls", "C", 9)]
    # Without y, the circle goes behind the stalls.
    stalls_back = max(event.seats.filter(section="Stalls").values_list("y", flat=True))
    assert min(event.seats.filter(section="Circle").values_list("y", flat=True)) > stalls_back


def test_create_event_imports_a_layout_file_and_can_leave_a_draft(db, tmp_path):
    layout = tmp_path / "hall.csv"
    layout.write_text(
        "section,row,number,x,y,price,attributes\n"
        "Stalls,A,1,-0.5,3,45,wheelchair\n"
        "Stalls,A,2,0.5,3,45,companion\n"
    )
    json_layout = tmp_path / "boxes.json"
    json_layout.write_text(
        '[{"section": "Box", "row": "A", "number": 1, "x": 9, "y": 1, "price": 120}]'
    )

    out = run("create_event", "--name", "Recital", "--layout", str(layout), "--draft")
    event = Event.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert event.sale_state == "draft"
    assert "a draft" in out
    assert sorted((s.label, s.features) for s in event.seats.all()) == [
        ("Stalls-A-1", ["wheelchair"]),
        ("Stalls-A-2", ["companion"]),
    ]

    out = run(
        "create_event",
        "--name",
        "Both",
        "--section",
        "Stalls:rows=1,seats=2,price=5",
        "--layout",
        str(json_layout),
    )
    both = Event.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert sorted(both.seats.values_list("section", "price")) == [
        ("Box", Decimal("120.00")),
        ("Stalls", Decimal("5.00")),
        ("Stalls", Decimal("5.00")),
    ]


def test_a_bad_layout_file_names_its_bad_lines_and_creates_nothing(db, tmp_path):
    layout = tmp_path / "hall.csv"
    layout.write_text(
        "section,row,number,x,y,price,attributes\nS,A,1,0,1,5,\nS,A,x,1,1,5,\nS,A,1,2,1,5,\n"
    )

    with pytest.raises(CommandError) as caught:
        run("create_event", "--name", "Gig", "--layout", str(layout))

    assert "line 3: number must be a whole number" in str(caught.value)
    assert "line 4: S-A-1 is given twice (first on line 2)" in str(caught.value)
    assert (Event.objects.count(), Venue.objects.count(), Seat.objects.count()) == (0, 0, 0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--section", "Stalls"], 'write it as "NAME:rows=R,seats=S,price=P"'),
        (["--section", "Stalls:rows=2,seats=3"], "--section Stalls: give price"),
        (["--section", "Stalls:rows=2,seats=3,price=5,tilt=4"], "'tilt=4' is not one of"),
        (["--section", "Stalls:rows=2,rows=3,seats=3,price=5"], "each once"),
        (["--section", "Stalls:rows=two,seats=3,price=5"], "rows must be a number"),
        (["--section", "Stalls:rows=2,seats=3,price=5,x=nan"], "x must be a number"),
        (["--section", "Stalls:rows=2,seats=3,price=-5"], "price must be 0 to 999999.99"),
        (["--section", "Stalls:rows=2,seats=3,price=5,wheelchair=C"], "“C” is not a row"),
        (["--section", "Stalls:rows=2,seats=3,price=5,curve=270"], "curve is 0-180"),
        (
            ["--section", "S:rows=1,seats=3,price=5", "--section", "S:rows=1,seats=3,price=5"],
            "Each section name may be used once",
        ),
        (["--section", "S:rows=1,seats=3,price=5", "--rows", "3"], "not both"),
        ([], "Give --section (repeatable) or --layout FILE"),
        (["--layout", "/nonexistent/hall.csv"], "cannot read it"),
    ],
)
def test_create_event_rejects_bad_sections_and_creates_nothing(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create_event", "--name", "Gig", *args)

    assert (Event.objects.count(), Venue.objects.count(), Seat.objects.count()) == (0, 0, 0)


def test_create_event_help_documents_the_section_syntax():
    parser = CreateEvent().create_parser("manage.py", "create_event")
    text = "".join(parser.format_help().split())  # argparse wraps lines mid-word

    assert "NAME:rows=R,seats=S,price=P[,x=X][,y=Y][,angle=DEG][,curve=DEG]" in text
    assert "wheelchair=ROWS" in text and "restricted=ROWS" in text
    assert "--layoutFILE" in text and "section,row,number,x,y,price,attributes" in text
