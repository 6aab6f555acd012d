"""HTTP through real uvicorn servers, served by Django's WSGI handler in a pool of WEB_THREADS
threads: many clients at once share a bounded set of database connections, a client that
sends its body slowly holds no thread, and the proxy's client address and scheme reach Django."""

import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import Message

import pytest
from django.db import connection

from tests import servers
from tests.servers import Server

pytestmark = pytest.mark.django_db(transaction=True)

APP_NAME = "seatline-wsgi-test"


def get(server: Server, path: str, headers: dict[str, str] | None = None) -> tuple[int, Message]:
    request = urllib.request.Request(server.origin + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            response.read()
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


def server_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [APP_NAME],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def server_factory(tmp_path):
    started: list[Server] = []

    def start(**env: str) -> Server:
        started.append(Server(tmp_path, f"wsgi-{len(started)}", **env).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.mark.postgres
def test_sixteen_clients_at_once_are_served_over_at_most_web_threads_connections(
    event, server_factory
):
    url = f"{servers.test_database_url()}?application_name={APP_NAME}"
    server = server_factory(DATABASE_URL=url, WEB_THREADS="4", DB_POOL_MIN_SIZE="1")
    path = f"/api/events/{event.pk}/seats"
    peak = 0
    loading = True

    def watch() -> None:
        nonlocal peak
        try:
            while loading:
                peak = max(peak, server_backends())
                time.sleep(0.01)
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(16) as clients:
            statuses = list(clients.map(lambda _: get(server, path)[0], range(400)))
    finally:
        loading = False
        watcher.join()

    assert statuses == [200] * 400  # the 12 clients beyond the threads wait, they are not refused
    # The pool keeps what it opened for minutes: the peak shows at the end too.
    assert 1 <= max(peak, server_backends()) <= 4


@pytest.mark.postgres
def test_web_threads_above_the_database_pool_is_refused_at_start(tmp_path):
    server = Server(tmp_path, "too-many", WEB_THREADS="30", DB_POOL_MAX_SIZE="20")
    with pytest.raises(RuntimeError, match="WEB_THREADS"):
        server.start()


def test_clients_sending_their_bodies_slowly_do_not_stall_other_requests(server_factory):
    server = server_factory(WEB_THREADS="2")
    slow = []
    for _ in range(4):  # twice as many as there are threads
        client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        # A login form post: the CSRF check reads the form's token from the body.
        client.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Cookie: csrftoken=" + b"a" * 32 + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\nusername="
        )
        slow.append(client)
    try:
        time.sleep(0.3)  # the server has read their headers
        started = time.monotonic()
        status = get(server, "/api/nothing-here")[0]
        assert (status, time.monotonic() - started < 3) == (404, True)
    finally:
        for client in slow:
            client.close()


def test_the_proxys_client_address_and_scheme_reach_django(server_factory):
    """uvicorn (--proxy-headers, trusting 127.0.0.1) takes both from the proxy's headers: the
    per-address login limit counts the client behind the proxy, and HTTPS is recognised."""
    server = server_factory(RATE_LIMIT_LOGIN="2/1m", SECURE_HSTS_SECONDS="3600")

    # Django sends Strict-Transport-Security on requests it knows came over HTTPS only.
    assert "Strict-Transport-Security" not in get(server, "/api/nothing-here")[1]
    _, secure = get(server, "/api/nothing-here", {"X-Forwarded-Proto": "https"})
    assert secure["Strict-Transport-Security"] == "max-age=3600"

    def log_in(address: str) -> int:
        csrf = "a" * 32
        request = urllib.request.Request(
            server.origin + "/accounts/login/",
            data=b"username=nobody&password=wrong",
            headers={
                "X-Forwarded-For": address,
                "X-Forwarded-Proto": "http",
                "Cookie": f"csrftoken={csrf}",
                "X-CSRFToken": csrf,
                "Content-Type": "application/x-www-form-urlencoded",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    # The limit counts in fixed windows of a clock minute: three logins that straddle a
    # minute's end would be counted in two windows, and the third let through.
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)
    assert [log_in("203.0.113.5") for _ in range(3)] == [200, 200, 429]
    assert log_in("198.51.100.7") == 200  # another client behind the same proxy
