"""The browser tests' shared fixtures: Debian's headless Chromium and a real server process
on the test database, with helpers to sign in and open an event's page."""

import os
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from tests.servers import Server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def fast_password_hashing():
    """The browsers log in to a server process, which checks passwords with the real hasher."""


@pytest.fixture(autouse=True)
def sync_database_calls_beside_playwright(monkeypatch):
    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse the tests' own (plain synchronous) database calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")


@pytest.fixture(autouse=True)
def close_connections_opened_beside_playwright(browser):
    # The test's queries while Playwright runs use connections of their own context, which
    # pytest-django does not close; an open one keeps PostgreSQL from dropping the test DB.
    yield
    connections.close_all()


@pytest.fixture
def server(tmp_path):
    env = {
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "REALTIME_HEARTBEAT_SECONDS": "2",
        # Every browser signs in from 127.0.0.1, and the servers of one run share their
        # counters in Redis: the per-address login and sign-up limits (10 a minute, 5 an hour;
        # tested in tests/booking_site) would refuse the browser tests' own sign-ins.
        "RATE_LIMIT_LOGIN": "1000/1m",
        "RATE_LIMIT_SIGNUP": "1000/1m",
    }
    started = Server(tmp_path, "web", **env)
    try:
        yield started.start()
    finally:
        started.stop()  # also one that did not answer in time, so it holds no connections


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


def customer_page(browser, server, username):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{server.origin}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-" + username)
    page.click("form.stack-form button[type=submit]")
    page.wait_for_url(f"{server.origin}/")
    return page


def open_map(page, server, event):
    page.goto(f"{server.origin}/events/{event.pk}/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
