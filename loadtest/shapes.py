"""The shapes of the JSON report (what `--report` writes and the HTML page shows).

Plain data only: ints, floats, strings, lists and dicts, so `json.dumps` takes it as is.
"""

from typing import TypedDict


class LatencySummary(TypedDict):
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class Retries(TypedDict):
    """Requests sent once more with the same Idempotency-Key after the first try got no
    answer (connection refused, dropped, timed out; retried through the next --url) or a
    503; `cut_off` counts the no-answer ones that had been sent (the server may have acted
    on them: their retry must be answered as they were); `outcomes` counts how the retried
    requests ended (ok, conflict, busy, error). A 409 here can be the first try's own
    success, where the server does not replay the first answer for a repeated key."""

    after_no_answer: int
    cut_off: int
    after_503: int
    outcomes: dict[str, int]


class OutcomesReport(TypedDict):
    """Holds or bookings: how the requests were answered, one count per request (a retried
    request counts once, by its last answer); latency from its first try to that answer."""

    ok: int
    conflict: int
    busy: int
    error: int
    errors_by_kind: dict[str, int]
    latency: LatencySummary
    retries: Retries


class Spread(TypedDict):
    mean: float | None
    min: int | None
    max: int | None


class ConfigReport(TypedDict):
    urls: list[str]
    event: int
    mode: str
    viewers: int
    customers: int
    rate: float | None
    duration: float
    bookings_target: int | None
    hot: int | None
    group: int


class Versions(TypedDict):
    start: int
    final: int


class BookingsReport(OutcomesReport):
    per_second: float
    seats_booked: int


class ChangesReport(TypedDict):
    made: int
    per_second: float
    missed_ticks: int | None


class ChangeToViewer(LatencySummary):
    expected_deliveries: int
    delivered: int


class ViewersReport(TypedDict):
    requested: int
    connected_at_start: int
    connected_at_end: int
    connections_failed: int
    connect_attempts_failed: int
    dropped: int
    # Reconnects that went to the next --url (after a drop or a failed connect).
    failovers: int
    resyncs_requested: int
    frames: Spread
    bytes: Spread


class ServerMemory(TypedDict):
    pids: list[int]
    rss_mb_start: float | None
    rss_mb_peak: float | None
    rss_mb_end: float | None
    # CPU time the server processes used from the start of the load until every viewer
    # had caught up (None where /proc cannot tell).
    cpu_seconds_load: float | None


class TimelineRow(TypedDict):
    """One second of the load, by the second a request started."""

    second: int
    bookings: int
    conflicts: int
    errors: int
    booking_p50_ms: float | None
    booking_p99_ms: float | None
    change_p50_ms: float | None
    change_p99_ms: float | None


class StaleViewer(TypedDict):
    """A viewer whose map did not end equal to the server's."""

    viewer: int
    url: str
    version: int
    stale_seats: list[int]
    stale_count: int
    ever_connected: bool
    last_error: str


class Verification(TypedDict):
    """`passed` when no seat was sold twice, every viewer ended equal to the server, every
    seat a booking answer named is sold and every seat sold during the run was named by a
    booking answer (each sale counted once, none unreported), and no 5xx but "busy"."""

    double_booked_seats: list[int]
    double_booked_in_answers: list[int]
    database_checked: bool
    viewers_out_of_date: int
    out_of_date_examples: list[StaleViewer]
    booked_but_not_sold: list[int]
    sold_but_not_booked: list[int]
    server_errors: int
    passed: bool


class Stopped(TypedDict):
    """Why and when the load ended. `reason` is one of duration, bookings, sold_out,
    customers_done, interrupted; `text` says it for people."""

    reason: str
    text: str
    at_seconds: float
    early: bool


class LoopLagReport(TypedDict):
    """One client process's event-loop lag during the load: how late a 50 ms sleep woke."""

    process: str
    viewers: int
    samples: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class ClientReport(TypedDict):
    """The load generator's own health: when `warning` is set, its event loops lagged
    enough to show in the latencies it measured."""

    viewer_processes: int
    loop_lag: list[LoopLagReport]
    warning: str | None


class Report(TypedDict):
    config: ConfigReport
    seats: int
    versions: Versions
    load_seconds: float
    stopped: Stopped
    settle_seconds: float
    bookings: BookingsReport
    holds: OutcomesReport
    changes: ChangesReport
    change_to_viewer: ChangeToViewer
    fanout_spread: LatencySummary
    viewers: ViewersReport
    server_memory: ServerMemory | None
    client: ClientReport
    timeline: list[TimelineRow]
    notes: list[str]
    verification: Verification
