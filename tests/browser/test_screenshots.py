"""Screenshots of the demo venue for the README (docs/screenshots/ with UPDATE_SCREENSHOTS=1),
taken from the real page:
desktop and phone, zoomed out (the whole venue) and zoomed in, with seats sold, held by
someone else and held by the viewer."""

import io
import os
import threading
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from playwright.sync_api import Page, expect

from events.management.commands.seed_demo import CUSTOMER, EVENT_NAME
from events.models import Event
from seats import services
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# The README's pictures are replaced only when asked (UPDATE_SCREENSHOTS=1); other runs keep
# theirs with the other test artifacts, so a test run leaves the working tree as it was.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else ROOT / "test-artifacts" / "screenshots"
)


def in_thread(work) -> None:
    """Runs `work` beside Playwright's event loop (whose thread cannot announce changes)."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def demo_event_with_some_seats_taken() -> Event:
    in_thread(lambda: call_command("seed_demo", stdout=io.StringIO()))
    event = Event.objects.get(name=EVENT_NAME)
    seats = {(s.section, s.row_label, s.number): s.pk for s in event.seats.all()}
    taken = {  # customer -> (seats to book, seats to hold), within the per-customer limit
        "pat": ([seats["Stalls", "B", n] for n in range(9, 15)], []),
        "sam": ([seats["Circle", "A", n] for n in range(12, 19)], []),
        "lee": ([seats["Circle", "B", n] for n in range(14, 18)], []),
        "kit": ([], [seats["Stalls", "D", n] for n in (5, 6, 7)]),
    }
    for name, (sold, held) in taken.items():
        customer = make_user(name)
        if sold:
            in_thread(
                lambda c=customer, s=sold: services.book_seats(
                    customer=c, event_id=event.pk, seat_ids=s
                )
            )
        if held:
            in_thread(
                lambda c=customer, h=held: services.hold_seats(
                    customer=c, event_id=event.pk, seat_ids=h
                )
            )
    assert event.seats.filter(state="sold").count() == 17
    assert event.seats.filter(state="held").count() == 3
    return event


def sign_in_and_open(browser, server, event, **context) -> Page:
    page = browser.new_context(**context).new_page()
    page.goto(f"{server.origin}/accounts/login/")
    page.fill("input[name=username]", CUSTOMER[0])
    page.fill("input[name=password]", CUSTOMER[1])
    page.click("form.stack-form button[type=submit]")
    page.wait_for_url(f"{server.origin}/")
    page.goto(f"{server.origin}/events/{event.pk}/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    return page


def test_screenshots_of_the_demo_venue(server, browser):
    event = demo_event_with_some_seats_taken()
    assert get_user_model().objects.filter(username=CUSTOMER[0]).exists()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    desktop = sign_in_and_open(browser, server, event, viewport={"width": 1366, "height": 900})
    stalls_f = event.seats.get(section="Stalls", row_label="F", number=12)
    desktop.locator(f"#seat-{stalls_f.pk}").click()
    expect(desktop.locator(f"#seat-{stalls_f.pk}")).to_have_attribute(
        "aria-label", "Section Stalls, row F, seat 12, €65.00, yours"
    )
    desktop.mouse.move(0, 0)
    desktop.wait_for_timeout(300)
    desktop.screenshot(path=str(SCREENSHOTS / "desktop.png"), full_page=True)
    desktop.locator(".map-view").screenshot(path=str(SCREENSHOTS / "zoomed-out.png"))

    desktop.locator(f"#seat-{stalls_f.pk}").focus()
    desktop.keyboard.press("+")
    desktop.wait_for_timeout(500)
    desktop.locator(".map-view").screenshot(path=str(SCREENSHOTS / "zoomed-in.png"))

    phone = sign_in_and_open(
        browser,
        server,
        event,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
    )
    phone.screenshot(path=str(SCREENSHOTS / "phone.png"))
    phone.locator(".map-view").scroll_into_view_if_needed()
    seat = phone.locator(f"#seat-{stalls_f.pk}")
    box = seat.bounding_box()
    phone.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    phone.wait_for_timeout(500)
    assert seat.bounding_box()["width"] >= 44
    phone.screenshot(path=str(SCREENSHOTS / "phone-zoomed-in.png"))

    for name in ("desktop", "zoomed-out", "zoomed-in", "phone", "phone-zoomed-in"):
        assert (SCREENSHOTS / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
