"""`manage.py loadtest` against real uvicorn servers, plus the viewer's frame bookkeeping
that its verdict rests on."""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from realtime.loadtest.preparation import sections_for
from realtime.loadtest.runner import best_seats
from realtime.loadtest.stats import ChangeLog
from realtime.loadtest.viewer import Viewer

ROOT = Path(__file__).resolve().parent.parent


# --- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, redis_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATABASE_URL=database_url, DEBUG="0", SECRET_KEY="x", ALLOWED_HOSTS="127.0.0.1")
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def manage(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_server(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "booking_site.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"uvicorn did not start: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def sqlite_server(tmp_path):
    env = server_env(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrated = manage(env, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    process, url = start_server(env, tmp_path / "server.log")
    yield env, url
    stop(process)


def run_loadtest(env: dict, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report_path = tmp_path / "report.json"
    done = manage(env, "loadtest", "--quiet", "--report", str(report_path), *args)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return done, report


# --- against a server ---------------------------------------------------------------------


def test_rush_sells_every_hot_seat_once_and_every_viewer_sees_it(sqlite_server, tmp_path):
    env, url = sqlite_server
    done, report = run_loadtest(
        env,
        tmp_path,
        "--url",
        url,
        "--viewers",
        "5",
        "--customers",
        "5",
        "--mode",
        "rush",
        "--seats",
        "60",
        "--hot",
        "6",
        "--group",
        "2",
        "--duration",
        "20",
        "--html-report",
        str(tmp_path / "report.html"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^verification\s+PASSED$", done.stdout, re.MULTILINE)

    verification = report["verification"]
    assert verification["passed"] is True
    assert verification["double_booked_seats"] == []
    assert verification["database_checked"] is True
    assert verification["viewers_out_of_date"] == 0

    # Five customers each grab two of six seats at the same moment: some must lose, and
    # the six seats end up sold exactly once between them.
    bookings = report["bookings"]
    assert bookings["seats_booked"] == 6
    assert bookings["error"] == 0
    assert report["holds"]["conflict"] >= 1
    assert bookings["latency"]["count"] == bookings["ok"] >= 3

    # Every viewer saw every hold and every sale, and paid for them in frames.
    changes = report["change_to_viewer"]
    assert changes["delivered"] == changes["expected_deliveries"] == 5 * report["changes"]["made"]
    assert changes["p50_ms"] is not None and changes["max_ms"] >= changes["p50_ms"]
    viewers = report["viewers"]
    assert viewers["connected_at_end"] == 5
    assert viewers["connections_failed"] == 0
    versions = report["versions"]["final"] - report["versions"]["start"]
    assert viewers["frames"]["min"] >= versions
    assert report["server_memory"]["rss_mb_peak"] > 0
    assert "verification PASSED" in (tmp_path / "report.html").read_text()


def test_unknown_event_is_a_clear_failure(sqlite_server, tmp_path):
    env, url = sqlite_server
    done, report = run_loadtest(env, tmp_path, "--url", url, "--event", "999", "--viewers", "1")
    assert done.returncode != 0
    assert "GET /api/events/999/seats answered 404" in done.stderr
    assert report == {}


def test_customers_not_known_to_the_server_are_refused_before_the_load(sqlite_server, tmp_path):
    env, url = sqlite_server
    created = manage(
        env,
        "shell",
        "-v0",
        "-c",
        "from realtime.loadtest.preparation import create_event; "
        "print(create_event(seat_count=10, tag='x'))",
    )
    event_id = created.stdout.split()[-1]
    # This load test's database is another one, so the sessions it writes mean nothing to
    # the server: it must say so instead of reporting a run of 401s.
    other = server_env(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    assert manage(other, "migrate", "-v0").returncode == 0
    done, report = run_loadtest(other, tmp_path, "--url", url, "--event", event_id)
    assert done.returncode != 0
    assert "not logged in" in done.stderr and "401" in done.stderr
    assert report == {}


@pytest.mark.postgres
@pytest.mark.redis
def test_two_processes_on_postgres_and_redis_agree(tmp_path):
    import psycopg

    base = urlsplit(os.environ["DATABASE_URL"])
    name = f"{base.path.lstrip('/')}_loadtest_{secrets.token_hex(3)}"
    admin_url = urlunsplit(base._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = server_env(urlunsplit(base._replace(path="/" + name)), os.environ["REDIS_URL"])
    # Redis pub/sub ignores database numbers: keep parallel runs' event 1 apart from ours.
    env["REDIS_PREFIX"] = f"loadtest-{secrets.token_hex(4)}"
    processes = []
    try:
        assert manage(env, "migrate", "-v0").returncode == 0
        for n in range(2):
            processes.append(start_server(env, tmp_path / f"server{n}.log"))
        urls = [arg for _, url in processes for arg in ("--url", url)]
        done, report = run_loadtest(
            env,
            tmp_path,
            *urls,
            "--viewers",
            "20",
            "--customers",
            "10",
            "--mode",
            "rush",
            "--seats",
            "200",
            "--hot",
            "12",
            "--group",
            "2",
            "--duration",
            "30",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        verification = report["verification"]
        assert verification["passed"] is True
        assert verification["database_checked"] is True
        assert verification["double_booked_seats"] == []
        assert verification["viewers_out_of_date"] == 0
        assert report["bookings"]["seats_booked"] == 12
        assert report["holds"]["conflict"] >= 1
        # Viewers of both processes saw the changes made through either.
        changes = report["change_to_viewer"]
        assert changes["delivered"] == changes["expected_deliveries"]
        assert len(report["server_memory"]["pids"]) == 2
    finally:
        for process, _ in processes:
            stop(process)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the viewer's bookkeeping -------------------------------------------------------------


def frame(kind: str, version: int, *seats: tuple[int, str]) -> bytes:
    buttons = "".join(
        f'<button type="submit" name="seat" value="{s}" id="seat-{s}" class="seat" '
        f'data-state="{state}" data-price="40.00">1</button>'
        for s, state in seats
    )
    marker = f'<div id="live-version" data-kind="{kind}" data-version="{version}"></div>'
    return (marker + buttons).encode()


def make_viewer(changes=None) -> Viewer:
    return Viewer(
        number=0,
        base_url="http://127.0.0.1:1",
        event_id=1,
        baseline={1: "available", 2: "available", 3: "available"},
        base_version=10,
        changes=changes or ChangeLog(),
    )


def test_viewer_applies_frames_arriving_out_of_order():
    viewer = make_viewer()
    viewer.apply(frame("delta", 12, (1, "sold")), at=1.0)
    assert viewer.version == 10 and viewer.gap_since == 1.0  # 11 is missing
    viewer.apply(frame("delta", 11, (1, "held"), (2, "held")), at=1.1)
    assert viewer.version == 12 and viewer.gap_since is None
    # Seat 1's older news (held, version 11) must not undo its sale (version 12).
    assert viewer.differences({1: "sold", 2: "held", 3: "available"}) == []


def test_viewer_ignores_replays_and_catches_up_from_a_sync():
    changes = ChangeLog()
    viewer = make_viewer(changes)
    viewer.apply(frame("delta", 11, (3, "held")), at=1.0)
    viewer.apply(frame("delta", 11, (3, "held")), at=2.0)
    assert list(changes.seen[(3, "held")]) == [1.0]
    viewer.apply(frame("delta", 14, (2, "held")), at=3.0)
    assert viewer.version == 11
    viewer.apply(frame("sync", 15, (1, "sold"), (2, "sold"), (3, "available")), at=4.0)
    assert viewer.version == 15 and viewer.ahead == set() and viewer.gap_since is None
    assert viewer.differences({1: "sold", 2: "sold", 3: "available"}) == []
    assert viewer.differences({1: "sold", 2: "sold", 3: "held"}) == [3]


def test_viewer_behind_a_heartbeat_asks_for_a_resync_after_a_grace_period():
    viewer = make_viewer()
    viewer.apply(frame("heartbeat", 13), at=1.0)
    assert viewer.version == 10 and viewer.server_version == 13
    sent = []
    viewer.ws = object()
    viewer.request_resync = lambda now: sent.append(now)
    viewer.check(1.0)
    viewer.check(2.0)
    assert sent == []  # the deltas may still be on their way
    viewer.check(3.5)
    assert sent == [3.5]


def test_best_seats_are_front_row_centre_of_the_first_section():
    seats = []
    for index, (section, row, number) in enumerate(
        [(s, r, n) for s in "AB" for r in "AB" for n in range(1, 6)], start=1
    ):
        seats.append(
            {
                "id": index,
                "section": section,
                "row": row,
                "number": number,
                "state": "sold" if index == 3 else "available",
            }
        )
    # Row A of section A is seats 1-5; 3 (the centre) is sold, so 2 and 4 come next.
    assert best_seats(seats, 3) == [2, 4, 1]


def test_sections_for_gives_exactly_the_asked_number_of_seats():
    for count in (1, 7, 25, 60, 5_001, 50_000):
        specs = sections_for(count)
        assert sum(s.rows * s.seats_per_row for s in specs) == count
        assert all(s.rows <= 200 and s.seats_per_row <= 500 for s in specs)
