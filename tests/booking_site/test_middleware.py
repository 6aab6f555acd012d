"""DatabaseBusyMiddleware on its own: which faults answer 503, in which form. The same on a
real PostgreSQL server that drops connections: tests/booking_site/test_database_faults.py;
faults raised outside a view: tests/booking_site/test_faults.py."""

import json
import sqlite3

import psycopg
import pytest
from django.db import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from django.http import HttpResponse
from django.test import RequestFactory
from psycopg_pool import PoolTimeout

from booking_site.middleware import DatabaseBusyMiddleware


def wrapped(cause: BaseException, wrapper: type[Exception] = OperationalError) -> Exception:
    """The error as Django raises it: its own class, the driver's error as the cause."""
    try:
        raise wrapper(str(cause)) from cause
    except wrapper as exc:
        return exc


def sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code
    return error


def answer(exc: Exception, path: str = "/events/1/") -> HttpResponse | None:
    middleware = DatabaseBusyMiddleware(lambda request: HttpResponse())
    return middleware.process_exception(RequestFactory().post(path), exc)


TRANSIENT = {
    "pool exhausted": wrapped(PoolTimeout("couldn't get a connection after 10.00 sec")),
    "server restarted (57P01)": wrapped(psycopg.errors.AdminShutdown("terminating")),
    "server crashed (57P02)": wrapped(psycopg.errors.CrashShutdown("crash")),
    "server starting (57P03)": wrapped(psycopg.errors.CannotConnectNow("starting up")),
    "connection failure (08006)": wrapped(psycopg.errors.ConnectionFailure("gone")),
    "statement time-out (57014)": wrapped(psycopg.errors.QueryCanceled("statement timeout")),
    "lock time-out (55P03)": wrapped(psycopg.errors.LockNotAvailable("lock timeout")),
    "deadlock (40P01)": wrapped(psycopg.errors.DeadlockDetected("deadlock detected")),
    "serialization failure (40001)": wrapped(psycopg.errors.SerializationFailure("could not")),
    "connection lost": wrapped(psycopg.OperationalError("the connection is closed")),
    "interface error on a lost connection": wrapped(
        psycopg.errors.AdminShutdown("terminating"), InterfaceError
    ),
    "sqlite locked": wrapped(sqlite_error(sqlite3.SQLITE_BUSY)),
    "sqlite locked (extended code)": wrapped(sqlite_error(sqlite3.SQLITE_BUSY | (2 << 8))),
}

NOT_TRANSIENT = {
    "disk full (53100)": wrapped(psycopg.errors.DiskFull("no space")),
    "no driver cause": OperationalError("x"),
    "integrity error": wrapped(psycopg.errors.UniqueViolation("dup"), IntegrityError),
    "undefined table": wrapped(psycopg.errors.UndefinedTable("no table"), ProgrammingError),
    "sqlite disk I/O": wrapped(sqlite_error(sqlite3.SQLITE_IOERR)),
    "not a database error": ValueError("x"),
}


@pytest.mark.parametrize("exc", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_database_fault_under_api_answers_json_503_retry(exc):
    response = answer(exc, "/api/events/1/bookings")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert body["code"] == "busy"
    assert body["error"]


@pytest.mark.parametrize("exc", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_database_fault_on_a_page_answers_html_503_retry(exc):
    response = answer(exc, "/events/1/")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["Content-Type"].startswith("text/html")
    assert b"try again" in response.content


@pytest.mark.parametrize("exc", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT.keys())
def test_other_errors_are_left_to_django(exc):
    assert answer(exc) is None


def test_a_503_without_retry_after_gets_one():
    middleware = DatabaseBusyMiddleware(lambda request: HttpResponse("busy", status=503))

    assert middleware(RequestFactory().post("/events/1/seats/toggle/"))["Retry-After"] == "1"


def test_a_503_keeps_its_own_retry_after_and_other_answers_get_none():
    def view(request):
        if request.path == "/own/":
            return HttpResponse(status=503, headers={"Retry-After": "30"})
        return HttpResponse(status=500)

    middleware = DatabaseBusyMiddleware(view)

    assert middleware(RequestFactory().get("/own/"))["Retry-After"] == "30"
    assert not middleware(RequestFactory().get("/other/")).has_header("Retry-After")
