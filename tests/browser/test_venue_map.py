"""The venue plan in a real browser: fit, zoom and pan, overview, keyboard, picks, phone."""

import re
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Page, expect

from events.models import Event
from seats import services
from tests.conftest import make_event, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}


def signed_in(browser, server, username: str, **context) -> Page:
    page = browser.new_context(**(context or DESKTOP)).new_page()
    page.goto(f"{server.origin}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-" + username)
    page.click("form.stack-form button[type=submit]")
    page.wait_for_url(f"{server.origin}/")
    return page


def show(page: Page, server, event) -> Page:
    page.goto(f"{server.origin}/events/{event.pk}/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    expect(page.locator("#seat-form")).to_have_class(re.compile(r"\bmap-live\b"))
    return page


def two_section_event(venue, *, rows=3, seats=5, wide=False):
    """Stalls in front of a circle; `wide`: two 30 x 60 blocks side by side, too small to
    pick a seat from when the whole venue is in view."""
    event = Event.objects.create(
        name="Concert", venue=venue, starts_at=timezone.now() + timedelta(days=30)
    )
    if wide:
        sections = [
            services.SectionSpec("Stalls", 30, 60, Decimal("40"), x=-35, y=2),
            services.SectionSpec("Circle", 30, 60, Decimal("25"), x=35, y=2),
        ]
    else:
        sections = [
            services.SectionSpec("Stalls", rows, seats, Decimal("40")),
            services.SectionSpec("Circle", rows, seats, Decimal("25")),
        ]
    services.generate_seat_map(event_id=event.pk, sections=sections)
    Event.objects.filter(pk=event.pk).update(sale_state=Event.SaleState.ON_SALE)
    return event


def zoom(page: Page) -> float:
    return float(page.locator("#seat-form").get_attribute("data-zoom"))


def inside(inner: dict, outer: dict, slack: float = 1.5) -> bool:
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack
    )


def focused_seat(page: Page) -> str:
    return page.evaluate("document.activeElement.id")


def seat_id(event, section: str, row: str, number: int) -> str:
    return f"seat-{event.seats.get(section=section, row_label=row, number=number).pk}"


def test_the_venue_fits_on_load_and_buttons_wheel_and_keys_zoom(server, browser, venue):
    event = two_section_event(venue, rows=6, seats=20)
    page = show(browser.new_context(**DESKTOP).new_page(), server, event)
    view = page.locator(".map-view").bounding_box()

    assert inside(page.locator(".plan").bounding_box(), view)
    assert view["width"] > 600 and view["height"] >= 280
    fitted = zoom(page)

    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#seat-form")).not_to_have_attribute("data-zoom", str(fitted))
    zoomed = zoom(page)
    assert zoomed == pytest.approx(fitted * 1.6, rel=0.01)
    page.get_by_role("button", name="Zoom out").click()
    assert zoom(page) == pytest.approx(fitted, rel=0.01)

    page.mouse.move(view["x"] + view["width"] / 2, view["y"] + view["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(100)
    assert zoom(page) > fitted * 1.3
    page.get_by_role("button", name="Whole venue").click()
    assert zoom(page) == pytest.approx(fitted, rel=0.01)

    page.locator(f"#{seat_id(event, 'Stalls', 'A', 1)}").focus()
    page.keyboard.press("+")
    assert zoom(page) > fitted * 1.5
    page.keyboard.press("0")
    assert zoom(page) == pytest.approx(fitted, rel=0.01)
    page.wait_for_timeout(400)  # the eased zoom settles
    assert inside(page.locator(".plan").bounding_box(), view)
    # The page itself never scrolls sideways, and the map is no scroll box.
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert page.evaluate("getComputedStyle(document.querySelector('.map-view')).overflow") == "clip"


def test_a_click_on_a_section_in_the_overview_zooms_to_it(server, browser, venue):
    event = two_section_event(venue, wide=True)  # 3,600 seats: too small to pick when fitted
    page = show(browser.new_context(**DESKTOP).new_page(), server, event)
    form = page.locator("#seat-form")
    expect(form).to_have_class(re.compile(r"(?=.*\bmap-far\b)(?=.*\bmap-nopick\b)"))
    circle = page.locator(".sec").nth(1)
    expect(circle.locator(".zone")).to_contain_text("Section Circle€25.001,800 free")
    seat = page.locator(f"#{seat_id(event, 'Circle', 'P', 30)}")
    small = seat.bounding_box()["width"]

    circle.locator(".zone").click()
    page.wait_for_timeout(400)

    # The section fills the view, or (too big for that) its clicked middle does, with seats
    # big enough to pick.
    box, view = circle.bounding_box(), page.locator(".map-view").bounding_box()
    middle = {"x": box["x"] + box["width"] / 2 - 1, "y": box["y"] + box["height"] / 2 - 1}
    assert inside({**middle, "width": 2, "height": 2}, view)
    assert box["width"] >= view["width"] * 0.7 or box["height"] >= view["height"] * 0.7
    assert seat.bounding_box()["width"] >= 8 > small
    expect(form).not_to_have_class(re.compile(r"\bmap-(far|nopick)\b"))
    # Zoomed in, a click picks (here: asks a visitor to sign in).
    seat.click()
    page.wait_for_url("**/accounts/login/**")


def test_the_map_is_one_tab_stop_and_keys_move_between_seats_rows_and_sections(
    server, browser, venue
):
    event = two_section_event(venue, rows=3, seats=5)
    page = show(browser.new_context(**DESKTOP).new_page(), server, event)
    tab_stops = page.locator('#seat-form .seat:not([tabindex="-1"])')
    expect(tab_stops).to_have_count(1)

    page.get_by_role("button", name="Whole venue").focus()
    page.keyboard.press("Tab")
    assert focused_seat(page) == seat_id(event, "Stalls", "A", 1)
    page.keyboard.press("Tab")
    assert page.evaluate("!document.getElementById('seat-form').contains(document.activeElement)")
    page.keyboard.press("Shift+Tab")
    assert focused_seat(page) == seat_id(event, "Stalls", "A", 1)

    moves = [
        ("ArrowRight", "Stalls", "A", 2),
        ("End", "Stalls", "A", 5),
        ("ArrowRight", "Stalls", "A", 5),  # the row's end: stays
        ("ArrowDown", "Stalls", "B", 5),  # the row behind, away from the stage
        ("Home", "Stalls", "B", 1),
        ("ArrowUp", "Stalls", "A", 1),
        ("ArrowDown", "Stalls", "B", 1),
        ("ArrowDown", "Stalls", "C", 1),
        ("ArrowDown", "Circle", "A", 1),  # past the back row: the section behind
        ("PageUp", "Stalls", "A", 3),  # a section's front row, middle seat
        ("PageDown", "Circle", "A", 3),
    ]
    for key, section, row, number in moves:
        page.keyboard.press(key)
        assert focused_seat(page) == seat_id(event, section, row, number), key
    expect(tab_stops).to_have_count(1)
    expect(tab_stops).to_have_id(seat_id(event, "Circle", "A", 3))
    # The seat focused from the keyboard is in view and big enough to see.
    box = page.locator(f"#{focused_seat(page)}").bounding_box()
    assert inside(box, page.locator(".map-view").bounding_box()) and box["width"] >= 26


def test_enter_holds_a_seat_keeps_focus_on_it_and_names_it_yours(server, browser, venue):
    make_user("alice")
    make_user("bob")
    event = two_section_event(venue)
    alice = show(signed_in(browser, server, "alice"), server, event)
    bob = show(signed_in(browser, server, "bob"), server, event)
    target = seat_id(event, "Stalls", "A", 1)

    alice.locator(f"#{target}").focus()
    alice.keyboard.press("Enter")

    seat = alice.locator(f"#{target}")
    expect(seat).to_have_attribute("data-state", "held")
    expect(seat).to_have_attribute("aria-label", "Section Stalls, row A, seat 1, €40.00, yours")
    assert focused_seat(alice) == target  # the swapped-in seat has the focus
    expect(seat).to_have_attribute("tabindex", "0")
    expect(bob.locator(f"#{target}")).to_have_attribute(
        "aria-label", "Section Stalls, row A, seat 1, €40.00, held"
    )

    alice.keyboard.press("ArrowRight")
    alice.keyboard.press("Enter")  # the next seat too, still from the keyboard
    second = alice.locator(f"#{seat_id(event, 'Stalls', 'A', 2)}")
    expect(second).to_have_attribute("aria-label", "Section Stalls, row A, seat 2, €40.00, yours")
    alice.keyboard.press("ArrowLeft")
    alice.keyboard.press("Enter")  # and the first one released again
    expect(seat).to_have_attribute("aria-label", "Section Stalls, row A, seat 1, €40.00, available")
    assert focused_seat(alice) == target
    expect(second).to_have_attribute("aria-label", "Section Stalls, row A, seat 2, €40.00, yours")


def test_a_live_change_reaches_a_zoomed_in_map_which_stays_zoomed(server, browser, venue):
    make_user("carol")
    dave = make_user("dave")
    event = two_section_event(venue, rows=6, seats=20)
    target = event.seats.get(section="Circle", row_label="B", number=10)
    page = show(signed_in(browser, server, "carol"), server, event)
    page.get_by_role("button", name="Zoom in").click()
    page.get_by_role("button", name="Zoom in").click()
    page.wait_for_timeout(300)
    zoomed = zoom(page)
    before = page.locator(f"#seat-{target.pk}").bounding_box()

    def book() -> None:  # from another thread: this one runs Playwright's event loop
        try:
            services.book_seats(customer=dave, event_id=event.pk, seat_ids=[target.pk])
        finally:
            connection.close()

    booker = threading.Thread(target=book)
    booker.start()
    booker.join()

    seat = page.locator(f"#seat-{target.pk}")
    expect(seat).to_have_attribute("data-state", "sold")
    expect(seat).to_have_attribute("tabindex", "-1")
    assert zoom(page) == zoomed
    assert seat.bounding_box() == pytest.approx(before, abs=0.5)  # drawn where it was


def test_quick_clicks_on_two_seats_hold_both_and_a_double_click_is_one_pick(server, browser, venue):
    make_user("erin")
    event = two_section_event(venue, rows=3, seats=10)
    page = show(signed_in(browser, server, "erin"), server, event)
    page.get_by_role("button", name="Zoom in").click()
    page.wait_for_timeout(300)
    first, second, third = (page.locator(f"#{seat_id(event, 'Stalls', 'B', n)}") for n in (4, 6, 8))
    boxes = [seat.bounding_box() for seat in (first, second)]
    requests = []
    page.on("request", lambda r: requests.append(r.post_data) if "/toggle/" in r.url else None)

    for box in boxes:  # a few milliseconds apart
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    expect(first).to_have_attribute("data-state", "held")
    expect(second).to_have_attribute("data-state", "held")
    expect(page.locator("#hold-panel")).to_contain_text("Seat 4")
    expect(page.locator("#hold-panel")).to_contain_text("Seat 6")

    third.dblclick()
    expect(third).to_have_attribute("data-state", "held")
    page.wait_for_timeout(500)
    expect(third).to_have_attribute("data-state", "held")
    assert len(requests) == 3
    expect(page.locator("#toasts [role=alert]")).to_have_count(0)


def test_seat_1_of_a_30_seat_row_is_clickable_at_1366_px(server, browser, venue):
    make_user("fay")
    event = make_event(venue, rows=10, seats_per_row=30)
    page = show(
        signed_in(browser, server, "fay", viewport={"width": 1366, "height": 768}), server, event
    )
    first = page.locator(f"#{seat_id(event, 'A', 'A', 1)}")
    box = first.bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    # Nothing lies over it: the row labels sit beside the row, outside it.
    on_top = page.evaluate("([x, y]) => document.elementFromPoint(x, y).id", centre)
    assert on_top == first.get_attribute("id")
    label = page.locator(".row").first.locator(".rl").first.bounding_box()
    assert label["x"] + label["width"] <= box["x"]
    first.click()
    expect(first).to_have_attribute("data-state", "held")


def test_on_a_phone_a_tap_zooms_until_seats_are_44_px_then_picks(server, browser, venue):
    make_user("gus")
    event = two_section_event(venue, rows=8, seats=24)
    page = show(signed_in(browser, server, "gus", **PHONE), server, event)
    seat = page.locator(f"#{seat_id(event, 'Circle', 'D', 12)}")
    assert seat.bounding_box()["width"] < 44
    expect(page.locator(".hint-touch")).to_be_visible()
    expect(page.locator(".hint-keys")).to_be_hidden()

    box = seat.bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(400)

    expect(seat).to_have_attribute("data-state", "available")  # the tap zoomed, picked nothing
    big = seat.bounding_box()
    assert big["width"] >= 44 and big["height"] >= 44
    assert inside(big, page.locator(".map-view").bounding_box())
    seat.tap()
    expect(seat).to_have_attribute("data-state", "held")
    # One scroll: no box inside the page scrolls, and the page is no wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
