"""What a run is asked to do, and the error that stops it before it starts."""

from dataclasses import dataclass, field
from typing import Literal

MODES = ("rush", "random", "steady")


@dataclass(frozen=True)
class CustomerLogin:
    """How one customer gets its session: cookies made ready (`how="cookies"`), or the log-in
    or sign-up form with a username and password."""

    how: Literal["cookies", "login", "signup"]
    cookies: dict[str, str] = field(default_factory=dict)
    username: str = ""
    password: str = ""


@dataclass
class Config:
    urls: list[str]
    event_id: int
    viewers: int = 100
    customers: int = 20
    mode: str = "rush"
    rate: float = 20.0
    duration: float = 30.0
    bookings: int | None = None
    hot: int = 20
    group: int = 2
    settle: float = 15.0
    open_timeout: float = 20.0
    deflate: bool = False
    # Client processes the viewers are spread over; 1: the viewers share the main process
    # (and its event loop) with the customers.
    viewer_processes: int = 1
    quiet: bool = False
    server_pids: list[int] = field(default_factory=list)
    customer_logins: list[CustomerLogin] = field(default_factory=list)
    seed: int | None = None


class LoadTestError(Exception):
    """The run could not start (server unreachable, event unknown, log-ins refused)."""
