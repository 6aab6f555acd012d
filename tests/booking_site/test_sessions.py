"""Sessions read from their cache copies (booking_site.sessions): no session or user query
on a signed-in request, sign-out ends a session everywhere, and a cache that is down or
stuck changes nothing a customer sees: the database answers, and once the cache is back no
signed-out session returns from it."""

import asyncio
import logging
import time

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from booking_site import auth_cache, sessions
from seats import loop_io

ENGINE = "booking_site.sessions"
BACKEND = "booking_site.auth_cache.CachedModelBackend"


@pytest.fixture(params=["locmem", pytest.param("redis", marks=pytest.mark.redis)])
def cached_auth(request, settings):
    """The cached session engine and user backend, on the local-memory cache or on the
    Redis of REDIS_URL (settings, with this test's own key prefix)."""
    if request.param == "locmem":
        # This test's own key prefix (conftest), so no other test's counters or copies count.
        prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "KEY_PREFIX": prefix,
            }
        }
    use_cached_auth(settings)
    return request.param


def use_cached_auth(settings) -> None:
    settings.SESSION_ENGINE = ENGINE
    settings.AUTHENTICATION_BACKENDS = [BACKEND]
    # Bad-JSON booking posts stand in for API requests here; none should be refused 429.
    settings.RATE_LIMIT_BOOKINGS = []
    sessions.copies.reset()


@pytest.fixture
def redis_cache(settings, throwaway_redis):
    """The cached engine and backend on a Redis of this test's own, as production configures
    its cache (1 s socket time-outs)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": throwaway_redis.url,
            "KEY_PREFIX": "test",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    use_cached_auth(settings)
    return throwaway_redis


def sign_in(client: Client, user) -> None:
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": "pw-" + user.username}
    )
    assert response.status_code == 302, response.content


def api_status(client: Client, event) -> int:
    """A booking request with a bad body: 400 for a signed-in customer, 401 for anyone else."""
    return client.post(
        f"/api/events/{event.pk}/bookings", data="{not json", content_type="application/json"
    ).status_code


def with_cookie(session_key: str) -> Client:
    """A client sending this session cookie (another tab, or someone who copied it), whatever
    the answers say to do with it (a 401 deletes it)."""
    other = Client()
    other.cookies["sessionid"] = session_key
    return other


def session_and_user_queries(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if "django_session" in q["sql"] or "auth_user" in q["sql"]
    ]


@pytest.mark.django_db
def test_a_signed_in_api_request_reads_no_session_or_user_row(cached_auth, client, alice, event):
    sign_in(client, alice)
    assert api_status(client, event) == 400  # copies the user in (login dropped its copy)

    with CaptureQueriesContext(connection) as queries:
        statuses = [api_status(client, event) for _ in range(3)]

    assert statuses == [400] * 3
    assert session_and_user_queries(queries) == []


@pytest.mark.django_db
def test_a_signed_in_request_reads_its_session_and_user_copies_in_one_cache_read(
    cached_auth, client, alice, event, monkeypatch
):
    sign_in(client, alice)
    assert api_status(client, event) == 400  # copies the user in
    reads: list[list[str]] = []
    get_many = sessions.copies.get_many

    def recorded(keys: list[str]) -> list[sessions.Lookup]:
        reads.append(list(keys))
        return get_many(keys)

    monkeypatch.setattr(sessions.copies, "get_many", recorded)
    response = client.post(
        f"/api/events/{event.pk}/bookings", data="{not json", content_type="application/json"
    )

    assert (response.status_code, response.wsgi_request.user) == (400, alice)
    session_key = client.cookies["sessionid"].value
    assert reads == [["session:" + session_key, sessions.user_copy_key(alice.pk)]]


@pytest.mark.django_db
def test_a_session_whose_user_hint_is_wrong_is_still_its_own_users(
    cached_auth, client, alice, bob, event
):
    """The hint only says which user copy to read along; the session says who is signed in."""
    sign_in(client, bob)
    assert api_status(client, event) == 400  # bob's copy is in the cache
    sign_in(client, alice)
    assert api_status(client, event) == 400
    session_key = client.cookies["sessionid"].value
    sessions._session_users[session_key] = str(bob.pk)

    response = client.post(
        f"/api/events/{event.pk}/bookings", data="{not json", content_type="application/json"
    )

    assert (response.status_code, response.wsgi_request.user) == (400, alice)


@pytest.mark.django_db
def test_without_the_engine_each_request_reads_the_session_and_the_user(
    settings, client, alice, event
):
    """The control: Django's database sessions and ModelBackend."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    sign_in(client, alice)

    with CaptureQueriesContext(connection) as queries:
        assert api_status(client, event) == 400

    assert len(session_and_user_queries(queries)) == 2


@pytest.mark.django_db
def test_signing_out_ends_the_session_in_every_tab(cached_auth, client, alice, event):
    sign_in(client, alice)
    key = client.cookies["sessionid"].value
    assert api_status(with_cookie(key), event) == 400

    client.post("/accounts/logout/")

    assert api_status(with_cookie(key), event) == 401
    assert api_status(client, event) == 401
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_a_session_read_while_it_is_signed_out_is_not_copied_back(
    cached_auth, client, alice, event
):
    """A request that read the session row just before sign-out deleted it cannot put its
    copy in the cache afterwards (its copy had expired, so it went to the database)."""
    sign_in(client, alice)
    key = client.cookies["sessionid"].value
    copy_key = sessions.SessionStore.cache_key_prefix + key
    caches["default"].delete(copy_key)  # the copy expired
    late = sessions.SessionStore(key)
    lookup = sessions.copies.get(copy_key)  # the late request misses the cache...
    data = late.decode(Session.objects.get(session_key=key).session_data)  # ...reads the row

    client.post("/accounts/logout/")
    sessions.copies.fill(copy_key, data, 300, lookup)  # ...and copies it in, too late

    assert api_status(with_cookie(key), event) == 401


@pytest.mark.django_db
def test_a_session_lasts_no_longer_than_its_expiry(cached_auth, settings, client, alice, event):
    settings.SESSION_COOKIE_AGE = 1
    sign_in(client, alice)
    assert api_status(client, event) == 400

    time.sleep(1.2)

    assert api_status(client, event) == 401


@pytest.mark.django_db
def test_session_data_written_by_one_request_is_read_by_the_next(cached_auth, client, alice):
    """A seat picked while signed out is held after sign-in: the pick travels in the
    session, through its copy."""
    session = client.session
    session["greeting"] = "hello"
    session.save()
    fresh = sessions.SessionStore(session.session_key)

    assert fresh["greeting"] == "hello"
    fresh["greeting"] = "bye"
    fresh.save()
    assert sessions.SessionStore(session.session_key)["greeting"] == "bye"


# --- the cache down or stuck ------------------------------------------------------------


def outage_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "booking_site.sessions" and "unreachable" in r.getMessage()
    ]


@pytest.mark.django_db
def test_with_redis_stopped_sign_in_and_requests_work_from_the_database(
    redis_cache, client, alice, event, caplog
):
    caplog.set_level(logging.WARNING)
    redis_cache.stop()

    sign_in(client, alice)
    statuses = [api_status(client, event) for _ in range(5)]
    events_page = client.get("/")

    assert statuses == [400] * 5
    assert events_page.status_code == 200 and b"alice" in events_page.content
    assert len(outage_warnings(caplog)) == 1  # once for the outage, not per request


@pytest.mark.django_db
def test_when_redis_is_back_the_cache_is_used_again(
    redis_cache, monkeypatch, client, alice, event, caplog
):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(sessions.copies, "RETRY_SECONDS", 0.2)
    redis_cache.stop()
    sign_in(client, alice)
    assert api_status(client, event) == 400

    redis_cache.start()  # empty, on the same port
    time.sleep(0.3)
    assert api_status(client, event) == 400  # copies the session and the user in
    with CaptureQueriesContext(connection) as queries:
        assert api_status(client, event) == 400

    assert session_and_user_queries(queries) == []
    assert any("answers again" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_a_session_signed_out_while_redis_is_stuck_stays_dead_when_it_answers_again(
    redis_cache, monkeypatch, client, alice, event
):
    """Sign-out cannot reach the stuck Redis, which keeps its copy of the session; once it
    answers again that copy must not be served (it belongs to a retired generation)."""
    monkeypatch.setattr(sessions.copies, "RETRY_SECONDS", 0.5)
    sign_in(client, alice)
    key = client.cookies["sessionid"].value
    assert api_status(with_cookie(key), event) == 400
    copy_key = sessions.SessionStore.cache_key_prefix + key

    redis_cache.freeze()
    started = time.monotonic()
    client.post("/accounts/logout/")
    assert api_status(with_cookie(key), event) == 401  # from the database meanwhile
    assert time.monotonic() - started < 5  # one 1 s time-out, not one per cache call

    redis_cache.thaw()
    time.sleep(0.6)

    assert api_status(with_cookie(key), event) == 401
    assert caches["default"].get(copy_key) is not None  # the old copy is still there...
    assert api_status(with_cookie(key), event) == 401  # ...and is never served


@pytest.mark.django_db
def test_a_user_deactivated_while_redis_is_stuck_is_signed_out_when_it_answers_again(
    redis_cache, monkeypatch, client, alice, event
):
    monkeypatch.setattr(sessions.copies, "RETRY_SECONDS", 0.5)
    sign_in(client, alice)
    assert api_status(client, event) == 400
    assert api_status(client, event) == 400  # served from the copies now

    redis_cache.freeze()
    assert api_status(client, event) == 400  # from the database; the cache is left alone
    alice.is_active = False
    alice.save()  # cannot drop the user's copy, which the frozen Redis keeps
    redis_cache.thaw()
    time.sleep(0.6)

    assert api_status(client, event) == 401


# --- read ahead on the event loop (booking_site.loop_bookings) ------------------------


def on_a_loop(coroutine_function):
    """Runs it on a fresh event loop, closing that loop's connections after it."""

    async def main():
        try:
            return await coroutine_function()
        finally:
            await loop_io.close()

    return asyncio.run(main())


@pytest.mark.redis
@pytest.mark.django_db
def test_on_the_event_loop_a_session_and_its_user_are_read_ahead_then_loaded_without_io(
    settings, client, alice, monkeypatch
):
    use_cached_auth(settings)  # on the Redis of REDIS_URL
    sign_in(client, alice)
    key = client.cookies["sessionid"].value
    sessions._session_users.pop(key, None)  # a process that has not seen it signed in
    reads: list[list[str]] = []
    aget_many = sessions.copies.aget_many

    async def counting(keys):
        reads.append(keys)
        return await aget_many(keys)

    monkeypatch.setattr(sessions.copies, "aget_many", counting)

    first = on_a_loop(lambda: sessions.aread_ahead(key))
    user_key = sessions.user_copy_key(alice.pk)
    assert reads == [[f"session:{key}"], [user_key]]  # the user is known once read
    with sessions.copies.prefetched(first), CaptureQueriesContext(connection) as queries:
        data = sessions.SessionStore(key).load()
        user = auth_cache.cached_user(data["_auth_user_id"])
        with pytest.raises(sessions.WouldBlock):
            sessions.copies.get("session:someone-else")
        with pytest.raises(sessions.WouldBlock):
            sessions.copies.set(user_key, {}, 60)
    assert user == alice
    assert queries.captured_queries == []

    reads.clear()
    on_a_loop(lambda: sessions.aread_ahead(key))
    assert reads == [[f"session:{key}", user_key]]  # seen signed in: one read


@pytest.mark.django_db
def test_on_the_event_loop_a_stopped_redis_leaves_the_session_to_a_thread(
    redis_cache, client, alice, event, caplog
):
    sign_in(client, alice)
    key = client.cookies["sessionid"].value
    redis_cache.stop()

    assert on_a_loop(lambda: sessions.aread_ahead(key)) is None
    # ...and threads read from the database meanwhile, without waiting on Redis again.
    assert api_status(client, event) == 400
    assert len(outage_warnings(caplog)) == 1
