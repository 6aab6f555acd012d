"""The load test's verdict: the JSON report built from a finished run's measurements."""

from array import array
from collections import Counter
from statistics import mean

from .customer import Ledger
from .runner import RunResult
from .shapes import ClientReport, LoopLagReport, Report, Spread, TimelineRow, Verification
from .stats import Second, summary_ms


def _spread(values: list[int]) -> Spread:
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(mean(values), 1), "min": min(values), "max": max(values)}


# A client whose event loop lags by this much (p99), or by a tenth of the change->viewer
# p99 if that is more, is measuring itself as much as the server.
LAG_WARNING_MS = 10.0


def client_report(result: RunResult, *, change_p99_ms: float | None) -> ClientReport:
    """Each client process's event-loop lag during the load, and a warning when it is large
    enough to be part of the latencies measured."""
    lags: list[LoopLagReport] = []
    for process in result.loop_lag:
        summary = summary_ms(process.lags)
        lags.append(
            {
                "process": process.name,
                "viewers": process.viewers,
                "samples": summary["count"],
                "p50_ms": summary["p50_ms"],
                "p99_ms": summary["p99_ms"],
                "max_ms": summary["max_ms"],
            }
        )
    processes = result.run.config.viewer_processes if result.run.config.viewers else 0
    worst = max(lags, key=lambda lag: lag["p99_ms"] or 0.0, default=None)
    warning = None
    threshold = max(LAG_WARNING_MS, 0.1 * (change_p99_ms or 0.0))
    if worst is not None and (worst["p99_ms"] or 0.0) >= threshold:
        warning = (
            f"the client's own event loop lagged (p99 {worst['p99_ms']} ms, max "
            f"{worst['max_ms']} ms in the {worst['process']}): the latencies measured "
            "include up to that much of the client's delay"
        )
        if worst["viewers"] > 1:
            warning += "; spread the viewers over more processes (--viewer-processes)"
    return {
        "viewer_processes": max(1, min(processes, result.run.config.viewers)),
        "loop_lag": lags,
        "warning": warning,
    }


def _rate_limit_note(ledger: Ledger) -> list[str]:
    limited = sum(
        count
        for outcomes in (ledger.holds, ledger.bookings)
        for kind, count in outcomes.error_kinds.items()
        if kind.startswith("429")
    )
    if not limited:
        return []
    return [
        f"{limited} requests were refused by the server's rate limits (429): to measure "
        "capacity, start it with RATE_LIMIT_SEAT_ACTIONS=off RATE_LIMIT_BOOKINGS=off"
    ]


def build(result: RunResult, *, db_double_booked: list[int] | None) -> Report:
    """The report (plain JSON data). `db_double_booked` is None when the database could not
    be checked from here."""
    run = result.run
    config = run.config
    ledger = run.ledger
    viewers = result.viewer_stats
    load_seconds = max(run.load_ended - run.load_started, 1e-9)

    seat_counts = Counter(seat for seats in ledger.booked for seat in seats)
    double_in_answers = sorted(seat for seat, n in seat_counts.items() if n > 1)
    double_booked = sorted(set(double_in_answers) | set(db_double_booked or []))
    truth = result.truth
    booked_not_sold = sorted(s for s in seat_counts if truth.get(s) != "sold")
    # A sale no answer told of: a booking whose answer was lost (no answer to either try) or
    # whose retry was not answered as the first try would have been.
    sold_not_booked = sorted(
        s
        for s, state in truth.items()
        if state == "sold" and s not in seat_counts and result.start_states.get(s) != "sold"
    )

    latencies, by_start = ledger.changes.latencies()
    change_summary = summary_ms(latencies)
    expected = len(ledger.changes.started) * len(viewers)
    out_of_date = result.viewers_out_of_date
    passed = (
        not double_booked
        and not out_of_date
        and not booked_not_sold
        and not sold_not_booked
        and not ledger.server_errors
    )
    verification: Verification = {
        "double_booked_seats": double_booked,
        "double_booked_in_answers": double_in_answers,
        "database_checked": db_double_booked is not None,
        "viewers_out_of_date": len(out_of_date),
        "out_of_date_examples": out_of_date[:10],
        "booked_but_not_sold": booked_not_sold,
        "sold_but_not_booked": sold_not_booked,
        "server_errors": ledger.server_errors,
        "passed": passed,
    }

    timeline: list[TimelineRow] = []
    change_seconds: dict[int, array[float]] = {}
    for started, values in by_start.items():
        change_seconds.setdefault(max(0, int(started - ledger.timeline.start)), array("d")).extend(
            values
        )
    for second in sorted(set(ledger.timeline.buckets) | set(change_seconds)):
        bucket = ledger.timeline.buckets.get(second, Second())
        booking = summary_ms(bucket.booking_latency)
        change = summary_ms(change_seconds.get(second, ()))
        timeline.append(
            {
                "second": second,
                "bookings": bucket.bookings,
                "conflicts": bucket.conflicts,
                "errors": bucket.errors,
                "booking_p50_ms": booking["p50_ms"],
                "booking_p99_ms": booking["p99_ms"],
                "change_p50_ms": change["p50_ms"],
                "change_p99_ms": change["p99_ms"],
            }
        )

    report: Report = {
        "config": {
            "urls": config.urls,
            "event": config.event_id,
            "mode": config.mode,
            "viewers": config.viewers,
            "customers": len(run.customers),
            "rate": config.rate if config.mode == "steady" else None,
            "duration": config.duration,
            "bookings_target": config.bookings,
            "hot": len(result.hot) if config.mode == "rush" else None,
            "group": config.group,
        },
        "seats": len(result.seat_ids),
        "versions": {"start": result.start_version, "final": result.final_version},
        "load_seconds": round(load_seconds, 2),
        "stopped": {
            "reason": run.stop_reason.code,
            "text": run.stop_reason.text,
            "at_seconds": round(load_seconds, 1),
            "early": run.stop_reason.code != "duration",
        },
        "settle_seconds": round(result.settle_seconds, 2),
        "bookings": {
            **ledger.bookings.as_dict(),
            "per_second": round(ledger.bookings.ok / load_seconds, 1),
            "seats_booked": sum(seat_counts.values()),
        },
        "holds": ledger.holds.as_dict(),
        "changes": {
            "made": len(ledger.changes.started),
            "per_second": round(len(ledger.changes.started) / load_seconds, 1),
            "missed_ticks": run.load.missed_ticks if config.mode == "steady" else None,
        },
        "change_to_viewer": {
            **change_summary,
            "expected_deliveries": expected,
            "delivered": ledger.changes.delivered(),
        },
        "fanout_spread": summary_ms(ledger.changes.spread()),
        "viewers": {
            "requested": len(viewers),
            "connected_at_start": result.connected_at_start,
            "connected_at_end": result.connected_at_end,
            "connections_failed": sum(1 for v in viewers if v["connects"] == 0),
            "connect_attempts_failed": sum(v["failed_connects"] for v in viewers),
            "dropped": sum(v["drops"] for v in viewers),
            "failovers": sum(v["failovers"] for v in viewers),
            "resyncs_requested": sum(v["resyncs"] for v in viewers),
            "frames": _spread([v["frames"] for v in viewers]),
            "bytes": _spread([v["bytes"] for v in viewers]),
        },
        "server_memory": run.memory.as_dict(),
        "client": client_report(result, change_p99_ms=change_summary["p99_ms"]),
        "timeline": timeline,
        "notes": run.load.notes + _rate_limit_note(ledger),
        "verification": verification,
    }
    return report
