"""What a run is asked to do, and the error that stops it before it starts."""

from dataclasses import dataclass, field

MODES = ("rush", "random", "steady")


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
    quiet: bool = False
    server_pids: list[int] = field(default_factory=list)
    # Each customer: ("cookies", {...}) ready-made, or ("login"|"signup", (username, password)).
    customer_logins: list[tuple[str, object]] = field(default_factory=list)
    seed: int | None = None


class LoadTestError(Exception):
    """The run could not start (server unreachable, event unknown, log-ins refused)."""
