import pytest
from django.db import OperationalError
from django.test import RequestFactory
from psycopg_pool import PoolTimeout

from booking_site.middleware import DatabaseBusyMiddleware


def pool_exhausted() -> OperationalError:
    try:
        raise OperationalError("couldn't get a connection") from PoolTimeout("timed out")
    except OperationalError as exc:
        return exc


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/events/1/bookings", "application/json"), ("/events/1/", "text/plain")],
)
def test_an_exhausted_connection_pool_answers_503_retry(path, content_type):
    middleware = DatabaseBusyMiddleware(lambda request: None)
    response = middleware.process_exception(RequestFactory().post(path), pool_exhausted())

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["Content-Type"].startswith(content_type)


def test_other_database_errors_are_left_alone():
    middleware = DatabaseBusyMiddleware(lambda request: None)
    assert middleware.process_exception(RequestFactory().get("/"), OperationalError("x")) is None
