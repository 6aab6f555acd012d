"""Real uvicorn servers for the load test to point at, and the command run as a user would."""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, redis_url: str = "") -> dict[str, str]:
    """The environment of a server and of the load test pointed at it: the same database
    and secret key, so that sessions the load test writes log its customers in."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=database_url,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        # A load test is a bot by design (README, "Rate limits").
        RATE_LIMIT_SEAT_ACTIONS="off",
        RATE_LIMIT_BOOKINGS="off",
    )
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


def run_loadtest(env: dict, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report_path = tmp_path / "report.json"
    done = manage(env, "loadtest", "--quiet", "--report", str(report_path), *args)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return done, report


def start_loadtest(env: dict, tmp_path: Path, *args: str) -> subprocess.Popen:
    """`manage.py loadtest` in the background, its progress readable on stderr."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "loadtest", "--report", str(tmp_path / "report.json"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
