"""Real `uvicorn booking_site.asgi:application` processes on the test database."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Server:
    """One server process. Its tests must use `transaction=True` so it sees their data."""

    def __init__(self, log_dir: Path, name: str, **env: str) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            # The same key as this process, so sessions the tests create are valid there.
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEBUG": "0",
            "SWEEP_IN_WEB_PROCESS": "0",
            **env,
        }
        self.log = log_dir / f"server-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "booking_site.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ws-ping-interval",
                "5",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.origin + "/api/events/0/seats", timeout=1)
            except urllib.error.HTTPError:
                return self  # answering (404: there is no event 0)
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        # Never leave a server behind that did not answer: it would hold the test database.
        self.process.kill()
        self.process.wait(timeout=15)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)

    def ws_url(self, event_id: int, version: int) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/events/{event_id}/?v={version}"


def session_headers(user) -> dict:
    """Cookies and CSRF header of a logged-in session, for API calls from outside a browser."""
    client = Client()
    client.force_login(user)
    csrf = secrets.token_hex(16)  # 32 characters, the form of Django's own cookie secret
    return {
        "Cookie": f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
        "Content-Type": "application/json",
    }


class ThrowawayRedis:
    """A redis-server of the test's own on a free port, to stop, freeze and restart (never
    the shared one). Needs `redis-server` on PATH."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None

    def start(self) -> "ThrowawayRedis":
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log_dir / f"redis-{self.port}.log"),
            ],
            cwd=self.log_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.answers():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.process.kill()
        self.process.wait(timeout=10)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def answers(self, timeout: float = 0.5) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stops it for good (as a crash would): connections are refused until start()."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case it is frozen
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """Stops it answering while its port stays open, like a stuck or swapping server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
