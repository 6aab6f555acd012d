"""Real browsers (Debian's headless Chromium) on a real server process."""

import signal
import threading
import time

import pytest
from django.db import connection
from playwright.sync_api import expect

from seats import services
from tests.browser.conftest import ARTIFACTS, customer_page, open_map
from tests.conftest import make_event, make_user
from tests.servers import Server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_two_customers_see_each_other_live_and_a_late_viewer_sees_the_result(
    server, browser, venue
):
    make_user("alice")
    make_user("bob")
    event = make_event(venue, rows=6, seats_per_row=10)
    seat = event.seats.order_by("pk")[12]
    alice, bob = customer_page(browser, server, "alice"), customer_page(browser, server, "bob")
    open_map(alice, server, event)
    open_map(bob, server, event)
    seat_on = {page: page.locator(f"#seat-{seat.pk}") for page in (alice, bob)}
    expect(seat_on[bob]).to_have_attribute("data-state", "available")

    seat_on[alice].click()
    expect(seat_on[alice]).to_have_attribute("data-state", "held")
    started = time.monotonic()
    expect(seat_on[bob]).to_have_attribute("data-state", "held", timeout=1000)
    seen_after = time.monotonic() - started
    expect(alice.locator("#hold-panel")).to_contain_text(f"Seat {seat.number}")
    expect(bob.locator("#hold-panel")).not_to_contain_text(f"Seat {seat.number}")

    seat_on[bob].click()  # someone else's hold: refused, nothing changes
    expect(bob.locator("#toasts")).not_to_be_empty()
    expect(seat_on[bob]).to_have_attribute("data-state", "held")

    alice.locator("#hold-panel .panel-checkout button").click()
    alice.wait_for_url("**/bookings/*/")
    expect(alice.get_by_role("row", name=f"A B {seat.number} €40.00")).to_be_visible()
    expect(seat_on[bob]).to_have_attribute("data-state", "sold", timeout=1000)
    seat.refresh_from_db()
    assert seat.state == "sold"

    late = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_map(late, server, event)
    expect(late.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "sold")
    expect(late.locator(f"#seat-{seat.pk}")).to_have_attribute(
        "aria-label", f"Section A, row B, seat {seat.number}, €40.00, sold"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    late.screenshot(path=str(ARTIFACTS / "seat-map.png"), full_page=True)
    bob.screenshot(path=str(ARTIFACTS / "seat-map-bob.png"), full_page=True)
    print(
        f"\nbob saw the hold {seen_after * 1000:.0f} ms after alice's page did; "
        f"screenshots in {ARTIFACTS}"
    )


def test_page_says_when_live_updates_pause_and_catches_up_when_they_resume(server, browser, venue):
    make_user("carol")
    dave = make_user("dave")
    event = make_event(venue, rows=2, seats_per_row=5)
    seat = event.seats.order_by("pk").first()
    page = browser.new_context().new_page()
    open_map(page, server, event)

    server.stop()  # a deploy or crash: uvicorn closes the socket with 1012
    expect(page.locator("#live-status")).to_have_attribute("data-status", "paused")
    expect(page.locator("#live-status")).to_contain_text("paused")

    # From another thread: this one runs Playwright's event loop, where the post-commit
    # announcement (async_to_sync) cannot run.
    def book() -> None:
        try:
            services.book_seats(customer=dave, event_id=event.pk, seat_ids=[seat.pk])
        finally:
            connection.close()

    booker = threading.Thread(target=book)
    booker.start()
    booker.join()
    server.start()

    expect(page.locator("#live-status")).to_have_attribute("data-status", "resumed", timeout=20_000)
    expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "sold")


def test_page_says_live_updates_pause_while_redis_is_down_and_catches_up_after(
    tmp_path, browser, venue, throwaway_redis
):
    dave = make_user("dave")
    event = make_event(venue, rows=2, seats_per_row=5)
    seat = event.seats.order_by("pk").first()
    redis = throwaway_redis
    server = Server(tmp_path, "web", REDIS_URL=redis.url).start()
    try:
        page = browser.new_context().new_page()
        open_map(page, server, event)
        status = page.locator("#live-status")

        redis.stop()
        expect(status).to_have_attribute("data-status", "paused", timeout=10_000)
        expect(status).to_contain_text("paused")

        def book() -> None:  # from another thread: this one runs Playwright's event loop
            try:
                services.book_seats(customer=dave, event_id=event.pk, seat_ids=[seat.pk])
            finally:
                connection.close()

        booker = threading.Thread(target=book)
        booker.start()
        booker.join()
        page.wait_for_timeout(3000)  # its reconnects are refused meanwhile
        expect(status).to_have_attribute("data-status", "paused")

        redis.start()  # on the same port
        expect(status).to_have_attribute("data-status", "resumed", timeout=15_000)
        expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "sold")
    finally:
        server.stop()
        redis.stop()


def test_page_of_a_killed_process_reconnects_to_its_restart_and_catches_up(server, browser, venue):
    make_user("gus")
    hal = make_user("hal")
    event = make_event(venue, rows=2, seats_per_row=5)
    seat = event.seats.order_by("pk").first()
    page = browser.new_context().new_page()
    open_map(page, server, event)

    server.stop(signal.SIGKILL)  # no close frame: the browser sees 1006
    expect(page.locator("#live-status")).to_have_attribute("data-status", "paused")

    def book() -> None:  # from another thread: this one runs Playwright's event loop
        try:
            services.book_seats(customer=hal, event_id=event.pk, seat_ids=[seat.pk])
        finally:
            connection.close()

    booker = threading.Thread(target=book)
    booker.start()
    booker.join()
    server.start()  # on the same port, as a supervisor would restart it

    expect(page.locator("#live-status")).to_have_attribute("data-status", "resumed", timeout=15_000)
    expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "sold")


def test_keyboard_alone_can_hold_a_seat(server, browser, venue):
    make_user("erin")
    event = make_event(venue, rows=1, seats_per_row=3)
    first = event.seats.order_by("pk").first()
    page = customer_page(browser, server, "erin")
    open_map(page, server, event)

    page.locator(f"#seat-{first.pk}").focus()
    page.keyboard.press("Enter")

    expect(page.locator(f"#seat-{first.pk}")).to_have_attribute("data-state", "held")
    expect(page.locator("#hold-panel")).to_contain_text(f"Seat {first.number}")


def test_a_double_click_never_shows_an_error(server, browser, venue):
    make_user("fay")
    event = make_event(venue, rows=1, seats_per_row=3)
    seat = event.seats.order_by("pk").first()
    page = customer_page(browser, server, "fay")
    open_map(page, server, event)
    answers = []
    page.on("response", lambda r: answers.append(r.status) if "/toggle/" in r.url else None)

    page.locator(f"#seat-{seat.pk}").dblclick()
    page.wait_for_timeout(1000)

    # Each click that went out toggled the seat; none went out without its seat (a 400).
    assert answers and all(status == 200 for status in answers), answers
    final = "held" if len(answers) % 2 else "available"
    expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", final)
    expect(page.locator("#toasts [role=alert]")).to_have_count(0)
