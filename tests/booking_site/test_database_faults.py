"""Database faults on real PostgreSQL, through real uvicorn servers: a restart that drops
every connection, a statement stuck behind a lock, a connection lost mid-request. Each
answers 503 with Retry-After or goes through, never 500; the process recovers by itself."""

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message

import pytest
from django.db import connection
from django.urls import reverse

from seats.models import Seat
from tests import servers
from tests.pg import another_session
from tests.servers import Server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

APP_NAME = "seatline-fault-test"


def get(server: Server, path: str) -> tuple[int, Message, bytes]:
    """Status, headers (looked up case-insensitively) and body of a GET."""
    try:
        with urllib.request.urlopen(server.origin + path, timeout=20) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def start_server(tmp_path, **env: str) -> Server:
    # The application name tells this server's connections from the test process's own.
    url = f"{servers.test_database_url()}?application_name={APP_NAME}"
    return Server(tmp_path, "faults", DATABASE_URL=url, **env).start()


@pytest.fixture
def server_factory(tmp_path):
    started: list[Server] = []

    def start(**env: str) -> Server:
        started.append(start_server(tmp_path, **env))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def server_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [APP_NAME],
        )
        return [pid for (pid,) in cursor.fetchall()]


def wait_for(condition, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def table_locked(table: str) -> Iterator[None]:
    """Another session holds the table locked against reads (say, a long migration)."""
    with another_session() as other:
        other.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        yield


def test_after_the_database_drops_every_connection_requests_go_through(event, server_factory):
    """What a PostgreSQL restart does to a running web process: each pooled connection is
    dead, and each used to answer one 500 before the pool noticed."""
    server = server_factory(DB_POOL_MIN_SIZE="4", DB_POOL_MAX_SIZE="4")
    path = f"/api/events/{event.pk}/seats"
    assert get(server, path)[0] == 200
    wait_for(lambda: len(server_backends()) == 4, "the server's pool to fill")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 4
    wait_for(lambda: not server_backends(), "the connections to close")

    statuses = [get(server, path)[0] for _ in range(8)]
    statuses.append(get(server, f"/events/{event.pk}/")[0])

    assert statuses == [200] * 9


def test_a_read_stuck_behind_a_table_lock_answers_503_retry_after_then_recovers(
    event, server_factory
):
    server = server_factory(DB_STATEMENT_TIMEOUT_MS="300")
    api, page = f"/api/events/{event.pk}/seats", reverse("event-detail", args=[event.pk])

    with table_locked(Seat._meta.db_table):
        api_status, api_headers, api_body = get(server, api)
        page_status, page_headers, page_body = get(server, page)

    assert (api_status, api_headers["Retry-After"]) == (503, "1")
    assert api_headers["Content-Type"] == "application/json"
    assert json.loads(api_body)["code"] == "busy"
    assert (page_status, page_headers["Retry-After"]) == (503, "1")
    assert page_headers["Content-Type"].startswith("text/html")
    assert b"try again" in page_body
    assert get(server, api)[0] == 200
    assert get(server, page)[0] == 200


def test_a_connection_lost_mid_request_answers_503_retry_after_then_recovers(event, server_factory):
    server = server_factory(DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="2")
    path = f"/api/events/{event.pk}/seats"
    answers: list[tuple[int, Message, bytes]] = []

    with table_locked(Seat._meta.db_table):
        request = threading.Thread(target=lambda: answers.append(get(server, path)))
        request.start()

        def waiting_backend() -> list[int]:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = %s AND wait_event_type = 'Lock'",
                    [APP_NAME],
                )
                return [pid for (pid,) in cursor.fetchall()]

        wait_for(waiting_backend, "the request to wait for the lock")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", waiting_backend())
        request.join(timeout=20)

    [(status, headers, body)] = answers
    assert (status, headers["Retry-After"]) == (503, "1")
    assert json.loads(body)["code"] == "busy"
    assert [get(server, path)[0] for _ in range(3)] == [200] * 3


def test_a_seat_click_on_a_busy_seat_answers_503_with_retry_after(
    alice, client, event, seat_ids, settings
):
    """The htmx seat action answers "busy" itself; the middleware adds the Retry-After."""
    settings.BOOKING_LOCK_TIMEOUT_MS = 200
    client.force_login(alice)
    with another_session() as other:
        other.execute(
            f'SELECT id FROM "{Seat._meta.db_table}" WHERE id = %s FOR UPDATE', [seat_ids[0]]
        )
        response = client.post(
            reverse("seat-toggle", args=[event.pk]),
            {"seat": seat_ids[0]},
            HTTP_HX_REQUEST="true",
        )

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
