"""The event page around the map, in a real browser: the phone's checkout bar, "Find N seats",
the hold panel's place in the Tab order, sales closing live, messages, and a seat clicked
while signed out."""

import re
import threading
from decimal import Decimal

import pytest
from django.db import connection
from playwright.sync_api import expect

from events.models import Event
from seats import services
from tests.browser.conftest import ARTIFACTS, customer_page, open_map
from tests.conftest import make_event, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def in_thread(work) -> None:
    """Runs a service beside Playwright: its post-commit announcement (async_to_sync) cannot
    run in this thread, which runs Playwright's event loop."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def sign_in(page, server, username):
    page.goto(f"{server.origin}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-" + username)
    page.click("form.stack-form button[type=submit]")
    page.wait_for_url(f"{server.origin}/")
    return page


def hold_one(page, seat) -> None:
    """Holds `seat` through the page, as a click on it does."""
    page.locator(f"#seat-{seat.pk}").dispatch_event("click")
    expect(page.locator("#hold-panel")).to_contain_text(f"Seat {seat.number}")


def test_find_n_seats_holds_seats_side_by_side_and_says_so(server, browser, venue):
    make_user("ann")
    event = make_event(venue, rows=3, seats_per_row=6)
    page = customer_page(browser, server, "ann")
    open_map(page, server, event)

    page.select_option("select[name=count]", "3")
    expect(page.locator(".find-submit")).to_have_text("Find 3 seats together")
    page.locator(".find-submit").click()

    expect(page.locator("#hold-panel .held-seat")).to_have_count(3)
    expect(page.locator("#toasts")).to_contain_text("Found 3 seats together")
    held = list(event.seats.filter(state="held").order_by("number"))
    assert len(held) == 3 and len({s.row_label for s in held}) == 1
    assert [s.number for s in held] == list(range(held[0].number, held[0].number + 3))
    for seat in held:
        expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "held")
    expect(page.locator("#hold-panel")).to_contain_text("(3 seats)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "event-page-desktop.png"))


def test_phone_has_a_checkout_bar_in_view_and_one_scroll(server, browser, venue):
    make_user("pia")
    event = make_event(venue, rows=12, seats_per_row=20)
    context = browser.new_context(**PHONE)
    page = sign_in(context.new_page(), server, "pia")
    open_map(page, server, event)
    expect(page.locator(".hold-bar")).to_be_hidden()  # nothing held yet

    page.select_option("select[name=count]", "2")
    page.locator(".find-submit").tap()

    bar = page.locator(".hold-bar")
    expect(bar).to_be_visible()
    expect(bar).to_contain_text("2 seats")
    expect(bar).to_contain_text("€80.00")
    expect(bar.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    box = bar.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 844 + 0.5, box
    checkout = bar.get_by_role("button", name="Checkout")
    assert checkout.bounding_box()["height"] >= 44
    # The bar stays at the bottom of the screen wherever the page is scrolled.
    page.mouse.wheel(0, 2000)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert abs(bar.bounding_box()["y"] - box["y"]) < 1
    # One scroll: nothing on the page is a scroll box of its own.
    nested = page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter(el => {
            const s = getComputedStyle(el);
            return /(auto|scroll)/.test(s.overflowY + s.overflowX)
              && (el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1);
        }).map(el => el.id || el.className)"""
    )
    assert nested == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "event-page-phone.png"))
    page.screenshot(path=str(ARTIFACTS / "event-page-phone-full.png"), full_page=True)

    checkout.tap()
    page.wait_for_url("**/bookings/*/")
    assert event.bookings.count() == 1


def test_messages_never_cover_the_map_and_sit_above_the_phone_bar(server, browser, venue):
    make_user("bea")
    make_user("cal")
    event = make_event(venue, rows=4, seats_per_row=8)
    seat = event.seats.order_by("pk")[3]
    bea = customer_page(browser, server, "bea")
    open_map(bea, server, event)
    hold_one(bea, seat)

    cal = customer_page(browser, server, "cal")
    open_map(cal, server, event)
    hold_one(cal, event.seats.order_by("pk")[0])
    cal.locator(f"#seat-{seat.pk}").dispatch_event("click")  # bea's: refused with a message
    toast = cal.locator("#toasts .toast")
    expect(toast).to_contain_text("held by another customer")
    # Beside the map, not over it, however far the page is scrolled; nor over Checkout.
    box, card = toast.bounding_box(), cal.locator(".map-card").bounding_box()
    assert box["x"] >= card["x"] + card["width"], (box, card)
    checkout = cal.locator("#hold-panel .panel-checkout").bounding_box()
    assert box["y"] + box["height"] <= checkout["y"], (box, checkout)
    cal.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    box, checkout = toast.bounding_box(), cal.locator("#hold-panel .panel-checkout").bounding_box()
    assert box["y"] + box["height"] <= checkout["y"], (box, checkout)

    phone = sign_in(browser.new_context(**PHONE).new_page(), server, "bea")
    open_map(phone, server, event)
    expect(phone.locator(".hold-bar")).to_be_visible()
    phone.select_option("select[name=count]", "1")
    phone.locator(".find-submit").tap()
    toast = phone.locator("#toasts .toast")
    expect(toast).to_be_visible()
    bar = phone.locator(".hold-bar").bounding_box()
    box = toast.bounding_box()
    assert box["y"] + box["height"] <= bar["y"], (box, bar)


def test_a_message_about_a_seat_goes_when_the_seat_changes(server, browser, venue):
    make_user("dan")
    eve = make_user("eve")
    event = make_event(venue, rows=2, seats_per_row=5)
    seat = event.seats.order_by("pk").first()
    services.hold_seats(customer=eve, event_id=event.pk, seat_ids=[seat.pk])
    page = customer_page(browser, server, "dan")
    open_map(page, server, event)

    page.locator(f"#seat-{seat.pk}").dispatch_event("click")
    alert = page.locator("#toasts [role=alert]")
    expect(alert).to_contain_text("held by another customer")

    hold = event.holds.get()
    in_thread(lambda: services.book_seats(customer=eve, event_id=event.pk, hold_id=hold.pk))

    expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "sold")
    expect(alert).to_have_count(0, timeout=2000)  # well before it would time out by itself


def test_closing_sales_updates_the_page_live_and_a_late_checkout_gets_one_message(
    server, browser, venue
):
    make_user("fia")
    event = make_event(venue, rows=2, seats_per_row=5)
    seat = event.seats.order_by("pk").first()
    page = customer_page(browser, server, "fia")
    open_map(page, server, event)
    hold_one(page, seat)
    expect(page.locator("#sale-badge")).to_have_text("On sale")
    expect(page.locator("#hold-panel .hold-timer .countdown")).to_be_visible()
    # A second tab without JavaScript (no live updates) keeps its Checkout button.
    stale = page.context.browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    stale.add_cookies(page.context.cookies())
    stale_page = stale.new_page()
    stale_page.goto(f"{server.origin}/events/{event.pk}/")
    expect(stale_page.locator("#hold-panel .panel-checkout button")).to_be_visible()

    in_thread(lambda: services.set_sale_state(event_id=event.pk, sale_state="closed"))

    expect(page.locator("#sale-banner")).to_contain_text("Sales are closed")
    expect(page.locator("#sale-badge")).to_have_text("Closed")
    expect(page.locator("#sale-badge")).to_have_class("badge badge-closed")
    expect(page.locator(".countdown")).to_have_count(0)
    expect(page.get_by_role("button", name="Checkout")).to_have_count(0)
    expect(page.locator("#hold-panel")).to_contain_text("can no longer be booked")
    expect(page.locator(".find-panel")).to_be_hidden()

    stale_page.locator("#hold-panel .panel-checkout button").click()
    stale_page.wait_for_load_state()
    expect(stale_page.locator("main .banner")).to_have_count(1)
    expect(stale_page.locator("main .banner")).to_contain_text("Sales are closed")
    assert not event.bookings.exists()

    in_thread(lambda: services.set_sale_state(event_id=event.pk, sale_state="on_sale"))
    expect(page.locator("#sale-badge")).to_have_text("On sale")
    expect(page.get_by_role("button", name="Checkout · €40.00")).to_be_visible()
    expect(page.locator(".find-panel")).to_be_visible()


def test_a_seat_clicked_while_signed_out_is_held_after_signing_in(server, browser, venue):
    make_user("gil")
    event = make_event(venue, rows=2, seats_per_row=5)
    seat = event.seats.order_by("pk")[2]
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_map(page, server, event)

    page.locator(f"#seat-{seat.pk}").dispatch_event("click")
    page.wait_for_url(re.compile(r"/accounts/login/\?next="))
    page.fill("input[name=username]", "gil")
    page.fill("input[name=password]", "pw-gil")
    page.click("form.stack-form button[type=submit]")

    page.wait_for_url(f"{server.origin}/events/{event.pk}/")
    expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "held")
    expect(page.locator("#hold-panel")).to_contain_text(f"Seat {seat.number}")
    expect(page.locator("#toasts")).to_contain_text("is yours for the next 10 minutes")
    seat.refresh_from_db()
    assert seat.state == "held" and seat.hold.customer.username == "gil"


def test_a_seat_taken_while_signing_up_is_explained(server, browser, venue):
    ivy = make_user("ivy")
    event = make_event(venue, rows=2, seats_per_row=5)
    seat = event.seats.order_by("pk")[2]
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_map(page, server, event)
    page.locator(f"#seat-{seat.pk}").dispatch_event("click")
    page.wait_for_url(re.compile(r"/accounts/login/\?next="))
    page.get_by_role("link", name="Create an account").click()
    services.book_seats(customer=ivy, event_id=event.pk, seat_ids=[seat.pk])

    page.fill("input[name=username]", "jon")
    page.fill("input[name=password1]", "a-long-pass-2026")
    page.fill("input[name=password2]", "a-long-pass-2026")
    page.locator("form.stack-form button[type=submit]").click()

    page.wait_for_url(f"{server.origin}/events/{event.pk}/")
    expect(page.locator("#toasts [role=alert]")).to_contain_text("was taken while you signed in")
    expect(page.locator(f"#seat-{seat.pk}")).to_have_attribute("data-state", "sold")


def test_the_hold_panel_and_checkout_are_a_few_tabs_from_the_top(server, browser, venue):
    make_user("kim")
    event = make_event(venue, rows=10, seats_per_row=20)
    page = customer_page(browser, server, "kim")
    open_map(page, server, event)
    hold_one(page, event.seats.order_by("pk")[5])
    page.locator("body").focus()
    page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")

    for _ in range(7):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Skip to your seats":
            break
    else:
        pytest.fail("no 'Skip to your seats' link in the first 7 Tab stops")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").startswith("Checkout")


def test_legend_names_tiers_sections_and_seat_marks(server, browser, venue):
    event = make_event(venue, on_sale=False)
    services.generate_seat_map(
        event_id=event.pk,
        sections=[
            services.SectionSpec("Stalls", 2, 6, Decimal("40"), wheelchair_rows=("A",)),
            services.SectionSpec("Balcony", 2, 6, Decimal("25"), y=8, restricted_rows=("B",)),
        ],
    )
    Event.objects.filter(pk=event.pk).update(sale_state="on_sale")
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_map(page, server, event)

    tiers = page.get_by_role("list", name="Prices by seat colour")
    expect(tiers).to_contain_text("€25.00 · Section Balcony")
    expect(tiers).to_contain_text("€40.00 · Sections A, Stalls")  # A: make_event's
    marks = page.get_by_role("list", name="Seat marks").first
    expect(marks).to_contain_text("Wheelchair space")
    expect(marks).to_contain_text("Restricted view")


def test_a_double_click_on_find_finds_seats_once(server, browser, venue):
    make_user("lou")
    event = make_event(venue, rows=3, seats_per_row=6)
    page = customer_page(browser, server, "lou")
    open_map(page, server, event)

    page.locator(".find-submit").dblclick()

    expect(page.locator("#hold-panel .held-seat")).to_have_count(2)
    page.wait_for_timeout(500)
    assert event.seats.filter(state="held").count() == 2
