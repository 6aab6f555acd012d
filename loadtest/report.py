"""The load test's verdict: the JSON report built from a finished run's measurements."""

from array import array
from collections import Counter
from statistics import mean

from .runner import RunResult
from .shapes import Report, Spread, TimelineRow, Verification
from .stats import Second, summary_ms


def _spread(values: list[int]) -> Spread:
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(mean(values), 1), "min": min(values), "max": max(values)}


def build(result: RunResult, *, db_double_booked: list[int] | None) -> Report:
    """The report (plain JSON data). `db_double_booked` is None when the database could not
    be checked from here."""
    run = result.run
    config = run.config
    ledger = run.ledger
    viewers = run.viewers
    load_seconds = max(run.load_ended - run.load_started, 1e-9)

    seat_counts = Counter(seat for seats in ledger.booked for seat in seats)
    double_in_answers = sorted(seat for seat, n in seat_counts.items() if n > 1)
    double_booked = sorted(set(double_in_answers) | set(db_double_booked or []))
    truth = result.truth
    booked_not_sold = sorted(s for s in seat_counts if truth.get(s) != "sold")

    latencies, by_start = ledger.changes.latencies()
    expected = len(ledger.changes.started) * len(viewers)
    out_of_date = result.viewers_out_of_date
    passed = (
        not double_booked and not out_of_date and not booked_not_sold and not ledger.server_errors
    )
    verification: Verification = {
        "double_booked_seats": double_booked,
        "double_booked_in_answers": double_in_answers,
        "database_checked": db_double_booked is not None,
        "viewers_out_of_date": len(out_of_date),
        "out_of_date_examples": out_of_date[:10],
        "booked_but_not_sold": booked_not_sold,
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
            **summary_ms(latencies),
            "expected_deliveries": expected,
            "delivered": ledger.changes.delivered(),
        },
        "fanout_spread": summary_ms(ledger.changes.spread()),
        "viewers": {
            "requested": len(viewers),
            "connected_at_start": result.connected_at_start,
            "connected_at_end": result.connected_at_end,
            "connections_failed": sum(1 for v in viewers if v.connects == 0),
            "connect_attempts_failed": sum(v.failed_connects for v in viewers),
            "dropped": sum(v.drops for v in viewers),
            "resyncs_requested": sum(v.resyncs for v in viewers),
            "frames": _spread([v.frames for v in viewers]),
            "bytes": _spread([v.bytes for v in viewers]),
        },
        "server_memory": run.memory.as_dict(),
        "timeline": timeline,
        "notes": run.load.notes,
        "verification": verification,
    }
    return report
