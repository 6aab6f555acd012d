"""Rate limits: per customer per event on seat actions, per customer on bookings, per client
address on login and sign-up; 429 with Retry-After, nothing changed, shared through the
cache, configurable in the environment, open when the cache is down."""

import asyncio
import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from booking_site.settings import env_rates
from seats import loop_io, ratelimits
from seats.models import Booking, Hold
from tests.conftest import make_event

# A window boundary of every rate used here (10 s, 1 min, 1 h), plus a little.
T0 = 1_800_000_000 + 0.25


class FrozenClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def freeze_clock(monkeypatch) -> FrozenClock:
    """Stops the limiter's clock at T0 until the test moves it (no window ends mid-test)."""
    frozen = FrozenClock()
    monkeypatch.setattr(ratelimits, "clock", frozen)
    return frozen


@pytest.fixture
def clock(monkeypatch):
    return freeze_clock(monkeypatch)


def post_json(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


# --- the limiter ----------------------------------------------------------------------


def test_a_fixed_window_refuses_past_its_limit_until_it_ends(clock):
    rates = [(3, 10)]

    allowed = [ratelimits.hit("t", "me", rates).allowed for _ in range(3)]
    refused = ratelimits.hit("t", "me", rates)

    assert allowed == [True, True, True]
    assert refused == ratelimits.Decision(allowed=False, retry_after=10)  # 9.75 s, rounded up
    clock.advance(9)
    assert ratelimits.hit("t", "me", rates).retry_after == 1
    clock.advance(1)
    assert ratelimits.hit("t", "me", rates).allowed
    assert ratelimits.hit("t", "someone-else", rates).allowed


def test_with_several_rates_the_longest_wait_is_given(clock):
    rates = [(2, 10), (3, 60)]
    for _ in range(2):
        assert ratelimits.hit("t", "me", rates).allowed

    assert ratelimits.hit("t", "me", rates).retry_after == 10
    clock.advance(10)
    # The 10 s window is new, the minute is used up: wait for the minute.
    assert ratelimits.hit("t", "me", rates) == ratelimits.Decision(False, retry_after=50)


def test_a_request_given_back_no_longer_counts(clock):
    rates = [(1, 10), (2, 60)]
    taken_back = ratelimits.hit("t", "me", rates)
    ratelimits.give_back(taken_back)

    kept = ratelimits.hit("t", "me", rates)
    refused = ratelimits.hit("t", "me", rates)

    assert taken_back.allowed and kept.allowed
    assert refused == ratelimits.Decision(allowed=False, retry_after=10)


def test_a_request_is_given_back_to_the_window_it_was_counted_in(clock):
    rates = [(1, 10)]
    old = ratelimits.hit("t", "me", rates)
    clock.advance(10)
    new = ratelimits.hit("t", "me", rates)

    ratelimits.give_back(old)  # its window is over: the new window's count stays

    assert new.allowed
    assert not ratelimits.hit("t", "me", rates).allowed


def test_no_rates_means_no_limit(clock):
    assert all(ratelimits.hit("t", "me", []).allowed for _ in range(100))


@pytest.fixture
def dead_cache(settings):
    """A Redis cache at an address nothing listens on."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    ratelimits._last_warning = float("-inf")


def test_with_the_cache_down_requests_go_through_with_a_warning(dead_cache, caplog):
    with caplog.at_level(logging.WARNING, logger="seats.ratelimits"):
        decisions = [ratelimits.hit("t", "me", [(1, 60)]) for _ in range(3)]

    assert all(d.allowed for d in decisions)
    ratelimits.give_back(decisions[0])  # nothing was counted, nothing to give back
    [warning] = [r for r in caplog.records if r.name == "seats.ratelimits"]  # once, not 3 times
    assert "cache is unreachable" in warning.getMessage()


def test_after_a_cache_failure_requests_skip_the_cache_for_a_while(dead_cache, monkeypatch):
    """A Redis that stopped answering costs one socket time-out, not one per request."""
    ratelimits.hit("t", "me", [(1, 60)])  # fails: the cache is down
    consulted = []
    monkeypatch.setattr(ratelimits, "caches", _Recording(consulted))

    assert ratelimits.hit("t", "me", [(1, 60)]).allowed
    assert consulted == []  # skipped

    ratelimits._cache_failed_at -= ratelimits._SKIP_CACHE_AFTER_FAILURE_SECONDS
    ratelimits.hit("t", "me", [(1, 60)])
    assert consulted == ["default"]  # tried again once the pause is over


class _Recording(dict[str, object]):
    def __init__(self, consulted: list[str]) -> None:
        super().__init__()
        self.consulted = consulted

    def __getitem__(self, alias: str) -> object:
        self.consulted.append(alias)
        return caches[alias]  # the dead cache


@pytest.mark.django_db
def test_with_the_cache_down_the_api_still_holds(dead_cache, client_for, alice, event, seat_ids):
    response = post_json(
        client_for(alice), f"/api/events/{event.pk}/holds", {"seats": seat_ids[:1]}
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("remote_addr", "counted_as"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("", "unknown"),
    ],
)
def test_clients_are_counted_by_address_and_ipv6_by_its_64(rf, remote_addr, counted_as):
    request = rf.post("/", REMOTE_ADDR=remote_addr)

    assert ratelimits.client_address(request) == counted_as


# --- settings from the environment -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rates"),
    [
        ("30/10s,120/1m", [(30, 10), (120, 60)]),
        (" 10 / m ", [(10, 60)]),
        ("5/1h", [(5, 3600)]),
        ("100/2d", [(100, 172_800)]),
        ("off", []),
        ("", [(7, 60)]),  # empty: the default
    ],
)
def test_rates_are_read_from_the_environment(monkeypatch, value, rates):
    monkeypatch.setenv("RATE_LIMIT_TEST", value)

    assert env_rates("RATE_LIMIT_TEST", "7/1m") == rates


@pytest.mark.parametrize("value", ["10", "10/", "ten/1m", "10/1w", "0/1m", "10/0s", "-1/1m"])
def test_a_malformed_rate_stops_the_site_from_starting(monkeypatch, value):
    monkeypatch.setenv("RATE_LIMIT_TEST", value)

    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_TEST"):
        env_rates("RATE_LIMIT_TEST", "7/1m")


# --- seat actions on the API ----------------------------------------------------------


@pytest.mark.django_db
def test_a_flood_of_holds_is_refused_with_429_and_changes_nothing(
    clock, client_for, alice, bob, event, seat_ids, db_state
):
    """The default limit: 30 seat actions per 10 s."""
    alice_client = client_for(alice)
    url = f"/api/events/{event.pk}/holds"
    answers = [post_json(alice_client, url, {"seats": seat_ids[:1]}) for _ in range(30)]
    assert {a.status_code for a in answers} == {201}
    before = db_state()

    refused = post_json(alice_client, url, {"seats": seat_ids[1:2]})

    assert refused.status_code == 429
    assert refused["Retry-After"] == "10"
    assert refused.json() == {
        "error": "Too many requests: please wait 10 seconds and try again.",
        "code": "rate_limited",
    }
    assert db_state() == before
    # Another customer is not affected, nor is the same customer on another event.
    assert post_json(client_for(bob), url, {"seats": seat_ids[2:3]}).status_code == 201
    other = make_event(event.venue, name="Other")
    other_seat = other.seats.first().pk
    assert (
        post_json(
            alice_client, f"/api/events/{other.pk}/holds", {"seats": [other_seat]}
        ).status_code
        == 201
    )
    # Once the window is over, the customer may go on.
    clock.advance(10)
    assert post_json(alice_client, url, {"seats": seat_ids[1:2]}).status_code == 201


@pytest.mark.django_db
def test_the_minute_limit_catches_a_steady_flood(clock, client_for, alice, event, seat_ids):
    """120 per minute: 30 every 10 s is within the burst limit but not the minute's."""
    alice_client = client_for(alice)
    url = f"/api/events/{event.pk}/holds"
    statuses = []
    for _ in range(5):
        statuses += [
            post_json(alice_client, url, {"seats": seat_ids[:1]}).status_code for _ in range(30)
        ]
        clock.advance(10)

    assert statuses.count(201) == 120
    assert statuses[120:] == [429] * 30


@pytest.mark.django_db
def test_releases_count_as_seat_actions_on_the_holds_event(
    clock, settings, client_for, alice, event, seat_ids, db_state
):
    settings.RATE_LIMIT_SEAT_ACTIONS = [(2, 10)]
    alice_client = client_for(alice)
    hold = post_json(alice_client, f"/api/events/{event.pk}/holds", {"seats": seat_ids[:3]}).json()
    first = alice_client.delete(
        f"/api/holds/{hold['hold']}",
        data=json.dumps({"seats": seat_ids[:1]}),
        content_type="application/json",
    )
    before = db_state()

    refused = alice_client.delete(f"/api/holds/{hold['hold']}")

    assert first.status_code == 200
    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")
    assert db_state() == before
    assert Hold.objects.get(pk=hold["hold"]).ended_at is None


@pytest.mark.django_db
def test_bookings_are_limited_per_customer_across_events(
    clock, client_for, alice, bob, venue, event, seat_ids, db_state
):
    """The default limit: 10 booking attempts a minute, whatever the event."""
    other = make_event(venue, name="Other")
    alice_client = client_for(alice)
    for n in range(10):
        target = event if n % 2 else other
        seat = target.seats.order_by("pk")[n // 2].pk
        answer = post_json(alice_client, f"/api/events/{target.pk}/bookings", {"seats": [seat]})
        assert answer.status_code in (201, 409)
    before = db_state()

    refused = post_json(alice_client, f"/api/events/{event.pk}/bookings", {"seats": seat_ids[-1:]})

    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused.json()["code"] == "rate_limited"
    assert db_state() == before
    bobs = post_json(client_for(bob), f"/api/events/{event.pk}/bookings", {"seats": seat_ids[-1:]})
    assert bobs.status_code == 201


@pytest.mark.django_db
def test_the_limit_is_shared_by_every_client_through_the_cache(
    clock, settings, alice, event, seat_ids
):
    """Two clients (two sessions, as two web processes would serve them) share one count."""
    settings.RATE_LIMIT_SEAT_ACTIONS = [(4, 10)]
    first, second = Client(), Client()
    first.force_login(alice)
    second.force_login(alice)
    url = f"/api/events/{event.pk}/holds"

    statuses = [
        post_json(client, url, {"seats": seat_ids[:1]}).status_code
        for client in (first, second, first, second, first, second)
    ]

    assert statuses == [201, 201, 201, 201, 429, 429]


@pytest.mark.django_db
def test_settings_change_the_limits(clock, settings, client_for, alice, event, seat_ids):
    settings.RATE_LIMIT_BOOKINGS = [(1, 3600)]
    alice_client = client_for(alice)
    url = f"/api/events/{event.pk}/bookings"

    assert post_json(alice_client, url, {"seats": seat_ids[:1]}).status_code == 201
    refused = post_json(alice_client, url, {"seats": seat_ids[1:2]})
    assert (refused.status_code, refused["Retry-After"]) == (429, "3600")

    settings.RATE_LIMIT_BOOKINGS = []  # "off"
    assert post_json(alice_client, url, {"seats": seat_ids[1:2]}).status_code == 201
    assert Booking.objects.count() == 2


# --- login and sign-up per address ----------------------------------------------------


def login(client, password, address="198.51.100.1"):
    return client.post(
        "/accounts/login/", {"username": "alice", "password": password}, REMOTE_ADDR=address
    )


@pytest.mark.django_db
def test_login_posts_are_limited_per_address(clock, client, alice):
    """The default limit: 10 login posts a minute from one address."""
    wrong = [login(client, "wrong").status_code for _ in range(10)]

    refused = login(client, "pw-alice")

    assert wrong == [200] * 10  # the form again, with its error
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert 'role="alert"' in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address, or the same one a minute later, may log in.
    assert login(Client(), "pw-alice", address="198.51.100.2").status_code == 302
    clock.advance(60)
    assert login(client, "pw-alice").status_code == 302


def signup(client, username, *, address="203.0.113.5", password="a-Long-pass-2026"):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": password, "password2": password},
        REMOTE_ADDR=address,
    )


@pytest.mark.django_db
def test_signups_are_limited_per_address(clock, client):
    """The default limit: 5 accounts an hour from one address; a form sent back with
    mistakes does not count."""
    mistakes = [signup(Client(), f"typo{n}", password="short").status_code for n in range(8)]
    created = [signup(Client(), f"person{n}").status_code for n in range(5)]

    refused = signup(client, "person5")

    assert mistakes == [200] * 8
    assert created == [302] * 5
    assert refused.status_code == 429
    assert refused["Retry-After"] == "3600"
    assert not get_user_model().objects.filter(username="person5").exists()
    assert signup(client, "person5", address="203.0.113.6").status_code == 302


@pytest.mark.redis
def test_on_the_event_loop_requests_count_in_the_same_windows(clock):
    """`ahit` (bookings answered on the event loop) and `hit` bump the same counters, and
    a counter the loop makes expires with its window as one `cache.add` makes."""
    rates = [(3, 10)]

    async def counted() -> list[bool]:
        try:
            return [(await ratelimits.ahit("t", "me", rates)).allowed for _ in range(2)]
        finally:
            await loop_io.close()

    assert ratelimits.hit("t", "me", rates).allowed
    assert asyncio.run(counted()) == [True, True]
    assert ratelimits.hit("t", "me", rates) == ratelimits.Decision(allowed=False, retry_after=10)

    async def refused_on_the_loop() -> ratelimits.Decision:
        try:
            return await ratelimits.ahit("t", "someone", rates)
        finally:
            await loop_io.close()

    assert asyncio.run(refused_on_the_loop()).allowed  # a new counter, made on the loop...
    [window] = ratelimits.windows("t", "someone", rates, clock.now)
    cache = caches["default"]
    raw = cache._cache.get_client(window.key).ttl(cache.make_and_validate_key(window.key))
    assert 0 < raw <= window.timeout  # ...expires like one cache.add made
    assert cache.get(window.key) == 1
