"""Sign-up and the admin's login under their per-address rate limits (the limits one by
one: tests/seats/test_ratelimits.py)."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from tests.seats.test_ratelimits import freeze_clock

ADDRESS = "203.0.113.9"


def signup(client: Client, username: str, password: str = "a-Long-pass-2026"):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": password, "password2": password},
        REMOTE_ADDR=ADDRESS,
    )


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_sign_ups_from_one_address_creates_no_more_than_the_limit(settings, monkeypatch):
    """Eight sign-ups at once with room for two: each is counted before its account is made,
    so no more than two get in while the others are still being created."""
    freeze_clock(monkeypatch)
    settings.RATE_LIMIT_SIGNUP = [(2, 3600)]
    burst = 8
    barrier = threading.Barrier(burst, timeout=30)
    statuses = [0] * burst

    def send(index: int) -> None:
        try:
            client = Client()
            barrier.wait()
            statuses[index] = signup(client, f"burst{index}").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert sorted(statuses) == [302] * 2 + [429] * 6
    assert get_user_model().objects.filter(username__startswith="burst").count() == 2


@pytest.mark.django_db
def test_a_sign_up_sent_back_with_mistakes_leaves_the_allowance_alone(settings, monkeypatch):
    freeze_clock(monkeypatch)
    settings.RATE_LIMIT_SIGNUP = [(1, 3600)]

    typos = [signup(Client(), f"typo{n}", password="short").status_code for n in range(3)]
    created = signup(Client(), "person").status_code
    refused = signup(Client(), "another").status_code

    assert (typos, created, refused) == ([200] * 3, 302, 429)


def admin_login(client: Client, password: str, address: str = ADDRESS):
    return client.post(
        "/admin/login/",
        {"username": "staff", "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


@pytest.mark.django_db
def test_admin_login_posts_are_limited_per_address_with_the_sites(
    settings, monkeypatch, client, staff
):
    """Staff passwords cannot be guessed without limit through the admin's own login page,
    nor twice as fast by taking turns with the site's."""
    clock = freeze_clock(monkeypatch)
    settings.RATE_LIMIT_LOGIN = [(4, 60)]
    site = [
        client.post(
            "/accounts/login/", {"username": "staff", "password": "wrong"}, REMOTE_ADDR=ADDRESS
        ).status_code
        for _ in range(2)
    ]
    admin = [admin_login(client, "wrong").status_code for _ in range(2)]

    refused = admin_login(client, "pw-staff")

    assert site + admin == [200] * 4  # the forms again, with their errors
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert "_auth_user_id" not in client.session
    assert admin_login(Client(), "pw-staff", address="203.0.113.10").status_code == 302
    clock.advance(60)
    assert admin_login(client, "pw-staff").status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_the_admin_login_page_still_shows(client, staff):
    page = client.get("/admin/login/?next=/admin/")

    assert page.status_code == 200
    assert b'name="password"' in page.content
