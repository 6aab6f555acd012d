"""The signed-in user read from its cache copy (booking_site.auth_cache.CachedModelBackend):
what an admin changes about a user (active, staff, password) takes effect on the user's
next request, the copy holds no password hash, and saving the user a request got from the
copy never writes back the copy's outdated fields."""

import pickle

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from booking_site import sessions
from tests.booking_site.test_sessions import (
    api_status,
    cached_auth,  # noqa: F401 (fixture)
    session_and_user_queries,
    sign_in,
    with_cookie,
)

# Each test runs on the local-memory cache and on the Redis of REDIS_URL.
pytestmark = pytest.mark.usefixtures("cached_auth")

NEW_PASSWORD = "a-Long-pass-2026"


def change_password(client, user) -> None:
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": "pw-" + user.username,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302, response.content


def warm(client, event) -> None:
    """Two requests, after which the session and the user are copied whatever happened
    before (signing in copies the user, a save drops the copy)."""
    assert [api_status(client, event) for _ in range(2)] == [400, 400]


@pytest.mark.django_db
def test_a_user_deactivated_with_save_is_signed_out_on_the_next_request(client, alice, event):
    sign_in(client, alice)
    warm(client, event)

    alice.is_active = False
    alice.save()

    assert api_status(client, event) == 401


@pytest.mark.django_db
def test_a_deleted_user_is_signed_out_on_the_next_request(client, alice, event):
    sign_in(client, alice)
    warm(client, event)

    alice.delete()

    assert api_status(client, event) == 401


@pytest.mark.django_db
def test_a_password_change_signs_out_the_users_other_sessions(
    client, django_user_model, alice, event
):
    phone = type(client)()
    sign_in(client, alice)
    sign_in(phone, alice)
    warm(client, event)
    warm(phone, event)
    phone_key = phone.cookies["sessionid"].value

    change_password(client, alice)

    assert api_status(client, event) == 400  # the session that changed it stays signed in
    assert api_status(with_cookie(phone_key), event) == 401
    assert django_user_model.objects.get(pk=alice.pk).check_password(NEW_PASSWORD)


@pytest.mark.django_db
def test_staff_who_lose_the_staff_flag_no_longer_see_drafts(client, staff, draft_event):
    sign_in(client, staff)
    url = f"/api/events/{draft_event.pk}/seats"
    assert [client.get(url).status_code for _ in range(2)] == [200, 200]

    staff.is_staff = False
    staff.save()

    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_pages_show_the_signed_in_user_from_the_copy(client, alice, event):
    sign_in(client, alice)
    warm(client, event)

    with CaptureQueriesContext(connection) as queries:
        page = client.get("/")

    assert page.status_code == 200
    assert b"Sign out" in page.content and b"(alice)" in page.content
    assert session_and_user_queries(queries) == []


@pytest.mark.django_db
def test_the_copy_holds_no_password_hash(client, alice, event):
    sign_in(client, alice)
    warm(client, event)

    stored = caches["default"].get(sessions.user_copy_key(alice.pk))

    assert stored is not None
    assert alice.password.encode() not in pickle.dumps(stored)
    assert alice.password.split("$")[2].encode() not in pickle.dumps(stored)  # nor its salt


@pytest.mark.django_db
def test_saving_the_requests_user_keeps_changes_made_since_it_was_copied(
    client, django_user_model, alice, event
):
    """An update that sends no signal (QuerySet.update, SQL) leaves the copy as it was; a
    password change through a request, which saves the request's user, must not write the
    copy's old e-mail address back over it."""
    sign_in(client, alice)
    warm(client, event)
    django_user_model.objects.filter(pk=alice.pk).update(email="new@example.com")

    change_password(client, alice)

    saved = django_user_model.objects.get(pk=alice.pk)
    assert saved.email == "new@example.com"
    assert saved.check_password(NEW_PASSWORD)


@pytest.mark.django_db
def test_signing_in_records_the_time_in_the_database(client, alice, event):
    sign_in(client, alice)
    warm(client, event)
    first = get_user_model().objects.get(pk=alice.pk).last_login

    client.post("/accounts/logout/")
    sign_in(client, alice)

    assert get_user_model().objects.get(pk=alice.pk).last_login > first


@pytest.mark.django_db
def test_signing_in_copies_the_user_so_the_first_request_reads_no_user_row(client, alice, event):
    sign_in(client, alice)

    with CaptureQueriesContext(connection) as queries:
        assert api_status(client, event) == 400

    assert session_and_user_queries(queries) == []


@pytest.mark.django_db
def test_signing_in_copies_the_users_row_not_the_instance_that_signed_in(alice):
    """A deactivation saved while the password was being checked is not undone by the copy
    made at sign-in (from the database's row, into an empty key only)."""
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)  # alice is stale
    sessions.copies.delete(sessions.user_copy_key(alice.pk))

    user_logged_in.send(sender=type(alice), request=None, user=alice)

    copy = caches["default"].get(sessions.user_copy_key(alice.pk))
    assert copy is not None and copy[1]["row"]["is_active"] is False
