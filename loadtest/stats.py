"""Counting and timing: request outcomes, per-second timeline, change-to-viewer latency."""

import asyncio
import math
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .shapes import LatencySummary, OutcomesReport

# How often the event-loop lag is sampled (LoopLag).
LAG_INTERVAL = 0.05

# A change is named by the seat and the state it reached.
ChangeKey = tuple[int, str]


def _wall_clock_anchor() -> float:
    """time.time() - perf_counter(), taken when the two clocks are read closest together."""
    best = (math.inf, 0.0)
    for _ in range(5):
        before = time.perf_counter()
        wall = time.time()
        after = time.perf_counter()
        best = min(best, (after - before, wall - (before + after) / 2))
    return best[1]


_ANCHOR = _wall_clock_anchor()


def clock() -> float:
    """Seconds on a clock that every process of a run shares: the wall clock as read once
    at start-up, advanced by the monotonic perf_counter. Receipt times taken by viewers in
    other processes compare with request times taken here (to the few microseconds the
    anchors differ by), and a wall-clock step during the run does not bend them."""
    return _ANCHOR + time.perf_counter()


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence; None when it is empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(values: Iterable[float]) -> LatencySummary:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    ordered = sorted(values)

    def ms(fraction: float) -> float | None:
        value = percentile(ordered, fraction)
        return None if value is None else round(value * 1000, 2)

    return {
        "count": len(ordered),
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
        "max_ms": ms(1.0),
    }


def seconds_array() -> "array[float]":
    return array("d")


@dataclass
class Outcomes:
    """What the requests of one kind (holds or bookings) got back."""

    ok: int = 0
    conflict: int = 0
    busy: int = 0
    error: int = 0
    latencies: "array[float]" = field(default_factory=seconds_array)
    error_kinds: Counter[str] = field(default_factory=Counter)
    # Requests sent a second time (same Idempotency-Key) after no answer or a 503, and how
    # those retried requests ended.
    retries_after_no_answer: int = 0
    # Of those, the ones whose first try had been sent (cut off, not refused a connection).
    retries_after_cut_off: int = 0
    retries_after_503: int = 0
    retried_outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> OutcomesReport:
        return {
            "ok": self.ok,
            "conflict": self.conflict,
            "busy": self.busy,
            "error": self.error,
            "errors_by_kind": dict(self.error_kinds.most_common(10)),
            "latency": summary_ms(self.latencies),
            "retries": {
                "after_no_answer": self.retries_after_no_answer,
                "cut_off": self.retries_after_cut_off,
                "after_503": self.retries_after_503,
                "outcomes": dict(self.retried_outcomes),
            },
        }


@dataclass
class Second:
    """One second of the load: bookings made, conflicts, errors, booking latencies."""

    bookings: int = 0
    conflicts: int = 0
    errors: int = 0
    booking_latency: "array[float]" = field(default_factory=seconds_array)


class Timeline:
    """Per-second buckets from the start of the load."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.buckets: dict[int, Second] = {}

    def _bucket(self, at: float) -> Second:
        second = max(0, int(at - self.start))
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = Second()
        return bucket

    def booking(self, *, at: float, status: str, latency: float) -> None:
        bucket = self._bucket(at)
        if status == "ok":
            bucket.bookings += 1
            bucket.booking_latency.append(latency)
        elif status == "conflict":
            bucket.conflicts += 1
        elif status == "error":
            bucket.errors += 1

    def recent_booking_latencies(self, seconds: int, now: float) -> list[float]:
        last = int(now - self.start)
        values: list[float] = []
        for second in range(last - seconds + 1, last + 1):
            bucket = self.buckets.get(second)
            if bucket:
                values.extend(bucket.booking_latency)
        return values


class ChangeLog:
    """Seat changes the customers made, and when every viewer saw each one.

    A seat reaches each state at most once in a run (holds are long and nothing is released
    or cancelled), so (seat, state) names one change. Observations are stored per change as
    packed floats: 1,000 viewers x 1,000 changes is 8 MB, not a million tuples.
    """

    def __init__(self) -> None:
        self.started: dict[ChangeKey, float] = {}
        self.seen: dict[ChangeKey, array[float]] = {}

    def made(self, *, seat_ids: Iterable[int], state: str, request_started: float) -> None:
        for seat_id in seat_ids:
            self.started.setdefault((seat_id, state), request_started)

    def observe(self, seat_id: int, state: str, at: float) -> None:
        times = self.seen.get((seat_id, state))
        if times is None:
            times = self.seen[(seat_id, state)] = seconds_array()
        times.append(at)

    def latencies(self) -> tuple["array[float]", dict[float, "array[float]"]]:
        """All change->viewer latencies, and the same grouped by the moment the change was
        requested."""
        everything = seconds_array()
        by_start: dict[float, array[float]] = {}
        for key, started in self.started.items():
            for at in self.seen.get(key, ()):
                # A viewer can learn of a change from a catch-up before the response is in;
                # never before the request started.
                latency = max(0.0, at - started)
                everything.append(latency)
                by_start.setdefault(started, seconds_array()).append(latency)
        return everything, by_start

    def spread(self) -> "array[float]":
        """For every delivery, how long after the first viewer this viewer got the change:
        the fan-out's own share of the latency, without the booking transaction."""
        spreads = seconds_array()
        for key in self.started:
            times = self.seen.get(key)
            if times:
                first = min(times)
                spreads.extend(at - first for at in times)
        return spreads

    def delivered(self) -> int:
        return sum(len(self.seen.get(key, ())) for key in self.started)

    def export(self) -> dict[ChangeKey, bytes]:
        """The observations, packed to send to another process (see merge)."""
        return {key: times.tobytes() for key, times in self.seen.items()}

    def merge(self, exported: dict[ChangeKey, bytes]) -> None:
        """Adds observations made in another process (its export())."""
        for key, packed in exported.items():
            times = self.seen.get(key)
            if times is None:
                times = self.seen[key] = seconds_array()
            times.frombytes(packed)


class LoopLag:
    """How late this process's event loop runs: a task sleeps LAG_INTERVAL again and again
    and records by how much each sleep overshot. Every time the client takes (a request's
    answer, a frame's receipt) is late by about as much, so when this grows towards the
    measured latencies, the client rather than the server is the bottleneck."""

    def __init__(self) -> None:
        self.at = seconds_array()
        self.lag = seconds_array()

    async def run(self) -> None:
        while True:
            before = clock()
            await asyncio.sleep(LAG_INTERVAL)
            now = clock()
            self.at.append(now)
            self.lag.append(max(0.0, now - before - LAG_INTERVAL))

    def between(self, start: float, end: float) -> list[float]:
        """The lags measured from `start` to `end` (on clock())."""
        return [lag for at, lag in zip(self.at, self.lag, strict=True) if start <= at <= end]
