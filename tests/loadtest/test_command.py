"""`manage.py loadtest` against real uvicorn servers."""

import json
import os
import re
import secrets
import signal
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from .servers import manage, run_loadtest, server_env, start_loadtest, start_server, stop


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
    assert report["server_memory"]["cpu_seconds_load"] > 0  # the server's work, measured

    # The rush ended because the seats ran out, long before --duration, and says so.
    stopped = report["stopped"]
    assert stopped["reason"] == "sold_out" and stopped["early"] is True
    assert stopped["at_seconds"] < 20
    assert re.search(
        r"^stopped\s+at \d+\.\d s of --duration 20 s: all 6 hot seats sold$",
        done.stdout,
        re.MULTILINE,
    )
    page = (tmp_path / "report.html").read_text()
    assert "verification PASSED" in page
    assert "all 6 hot seats sold" in page and "latency (ms)" in page


def test_a_bookings_target_ends_the_run_and_the_report_says_so(sqlite_server, tmp_path):
    env, url = sqlite_server
    done, report = run_loadtest(
        env,
        tmp_path,
        *("--url", url, "--viewers", "2", "--customers", "2", "--mode", "steady"),
        *("--rate", "20", "--seats", "100", "--bookings", "3", "--duration", "30"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["bookings"]["ok"] >= 3
    assert report["stopped"]["reason"] == "bookings"
    assert report["stopped"]["at_seconds"] < 30
    assert re.search(r"^stopped\s+at .*: --bookings 3 reached$", done.stdout, re.MULTILINE)


def test_ctrl_c_ends_the_load_and_still_verifies_and_reports(sqlite_server, tmp_path):
    env, url = sqlite_server
    process = start_loadtest(
        env,
        tmp_path,
        *("--url", url, "--viewers", "2", "--customers", "2", "--mode", "steady"),
        *("--rate", "5", "--seats", "400", "--duration", "60"),
    )
    try:
        for line in process.stderr:
            if line.startswith("load: "):
                break
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stdout + stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stopped"]["reason"] == "interrupted"
    assert 1 <= report["stopped"]["at_seconds"] < 30
    assert report["bookings"]["ok"] >= 3
    assert report["verification"]["passed"] is True
    assert re.search(r"^stopped\s+at .*: interrupted$", stdout, re.MULTILINE)


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
        "from loadtest.preparation import create_event; "
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
