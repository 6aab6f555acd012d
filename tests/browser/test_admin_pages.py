"""The staff pages in a real browser (Debian's headless Chromium): the event list at a
laptop's width, and the seat-map preview."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from events.management.commands.seed_demo import SECTIONS
from events.models import Event, Venue
from seats import services
from tests.browser.conftest import ARTIFACTS
from tests.conftest import make_event, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 768}


def staff_page(browser, server):
    """A page signed in as staff (a session made here, so no login form or its limit)."""
    client = Client()
    client.force_login(make_user("staff", is_staff=True, is_superuser=True))
    context = browser.new_context(viewport=LAPTOP)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.origin}]
    )
    return context.new_page()


def test_every_event_list_column_is_visible_at_1366_px(server, browser):
    venue = Venue.objects.create(name="Royal Concert Hall of Springfield", city="Springfield")
    make_event(venue, name="Midsummer Night's Dream — the extended evening performance")
    make_event(venue, name="Winter Gala", on_sale=False)
    page = staff_page(browser, server)

    page.goto(f"{server.origin}/admin/events/event/")

    headers = page.locator("#result_list thead th")
    expect(headers.last).to_contain_text("map", ignore_case=True)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-event-list-1366.png"))
    # The table scrolls (clipped) inside its box when too wide: the last column must end
    # within that box, and the box within the window.
    box = page.locator("#changelist-form .results").bounding_box()
    visible_right = min(box["x"] + box["width"], LAPTOP["width"])
    for last in (headers.last, page.locator("#result_list tbody tr:first-child td").last):
        edge = last.bounding_box()
        assert edge["x"] + edge["width"] <= visible_right
    assert page.evaluate(
        "(r => r.scrollWidth <= r.clientWidth)(document.querySelector('#changelist-form .results'))"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]


def test_the_preview_draws_a_drafts_plan_for_staff(server, browser):
    venue = Venue.objects.create(name="Demo Arena")
    event = Event.objects.create(name="Preview night", venue=venue, starts_at="2030-01-01T20:00Z")
    services.generate_seat_map(event_id=event.pk, sections=SECTIONS)
    box_seat = event.seats.filter(section="Box Left").first()
    page = staff_page(browser, server)

    page.goto(f"{server.origin}/admin/events/event/{event.pk}/seat-map-preview/")

    expect(page.locator(".seat")).to_have_count(event.seats.count())
    expect(page.locator(f"#seat-{box_seat.pk}")).to_be_visible()
    expect(page.get_by_role("row", name="Box Left")).to_contain_text("120.00")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-seat-map-preview.png"), full_page=True)
    # Clicking a seat here holds nothing.
    page.locator(f"#seat-{box_seat.pk}").click()
    box_seat.refresh_from_db()
    assert box_seat.state == "available"


def test_the_seat_generator_fits_a_laptop_screen_and_creates_a_curved_section(server, browser):
    venue = Venue.objects.create(name="Demo Arena")
    event = Event.objects.create(name="New show", venue=venue, starts_at="2030-01-01T20:00Z")
    page = staff_page(browser, server)
    page.goto(f"{server.origin}/admin/events/event/{event.pk}/generate-seats/")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-generate-seats.png"), full_page=True)
    last_field = page.locator("input[name='form-0-restricted_rows']").bounding_box()
    assert last_field["x"] + last_field["width"] <= LAPTOP["width"]
    for name, value in {
        "name": "Stalls",
        "rows": "4",
        "seats_per_row": "12",
        "price": "45",
        "y": "3",
        "curve": "60",
        "wheelchair_rows": "D",
    }.items():
        page.fill(f"input[name='form-0-{name}']", value)
    page.click("input[type=submit][value='Generate seats']")

    page.wait_for_url("**/seat-map-preview/")
    expect(page.locator(".seat")).to_have_count(48)
    assert event.seats.filter(wheelchair=True).count() == 2
