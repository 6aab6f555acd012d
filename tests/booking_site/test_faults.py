"""The 500 handler (booking_site.faults.server_error): a transient database fault raised
outside any view, where DatabaseBusyMiddleware cannot see it, answers 503 "busy" too; any
other error keeps Django's 500. And the row-locking transaction agrees with the web on what
is transient: one rule, seats.locking.is_transient_database_fault."""

import json
import sqlite3

import psycopg
import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import Error
from django.test import Client

from booking_site import faults
from seats import locking
from seats.errors import Busy
from tests.booking_site.test_middleware import NOT_TRANSIENT, TRANSIENT, sqlite_error, wrapped


@pytest.fixture
def session_save_fails(monkeypatch):
    """Returns a function making SessionMiddleware's save of a changed session raise `exc`:
    a fault after the view has answered (login's own save, inside the view, goes through)."""

    def fail_with(exc: Exception) -> None:
        real_save = SessionStore.save

        def save(self, must_create=False):
            if must_create:  # login() making the new session, inside the view
                return real_save(self, must_create=True)
            raise exc

        monkeypatch.setattr(SessionStore, "save", save)

    return fail_with


def log_in(client: Client):
    return client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "exc",
    [
        wrapped(sqlite_error(sqlite3.SQLITE_BUSY)),
        wrapped(psycopg.errors.AdminShutdown("terminating")),
        wrapped(psycopg.errors.DeadlockDetected("deadlock detected")),
    ],
    ids=["sqlite locked", "connection dropped", "deadlock"],
)
def test_a_transient_fault_saving_the_session_after_login_answers_503_busy(
    alice, session_save_fails, exc
):
    session_save_fails(exc)

    response = log_in(Client(raise_request_exception=False))

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["Content-Type"].startswith("text/html")
    assert b"try again" in response.content


@pytest.mark.django_db
def test_any_other_fault_saving_the_session_keeps_djangos_500(alice, session_save_fails):
    session_save_fails(wrapped(psycopg.errors.DiskFull("no space")))

    response = log_in(Client(raise_request_exception=False))

    assert response.status_code == 500
    assert not response.has_header("Retry-After")
    assert b"Server Error (500)" in response.content


@pytest.mark.parametrize("exc", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_fault_outside_a_view_under_api_answers_json_503(rf, exc):
    try:
        raise exc
    except Error:
        response = faults.server_error(rf.post("/api/events/1/bookings"))

    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert json.loads(response.content)["code"] == "busy"


@pytest.mark.parametrize("exc", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT.keys())
def test_any_other_error_outside_a_view_is_djangos_500(rf, exc):
    try:
        raise exc
    except Exception:
        response = faults.server_error(rf.post("/api/events/1/bookings"))

    assert response.status_code == 500
    assert not response.has_header("Retry-After")


@pytest.mark.django_db
@pytest.mark.parametrize("exc", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_in_a_locked_transaction_every_transient_fault_is_busy(exc):
    with pytest.raises(Busy), locking.locked_transaction():
        raise exc


@pytest.mark.django_db
@pytest.mark.parametrize("exc", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT.keys())
def test_in_a_locked_transaction_other_errors_go_through(exc):
    with pytest.raises(type(exc)), locking.locked_transaction():
        raise exc
