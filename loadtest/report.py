"""The load test's verdict: the JSON report, the printed table, the optional HTML chart."""

import html
import json
from array import array
from collections import Counter
from collections.abc import Callable
from statistics import mean
from typing import Literal

from .runner import RunResult
from .shapes import Report, Spread, TimelineRow, Verification
from .stats import Second, percentile, summary_ms

LatencyColumn = Literal["booking_p50_ms", "booking_p99_ms", "change_p50_ms", "change_p99_ms"]


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


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value:,}{unit}"


def table(report: Report) -> str:
    """The human summary printed at the end of a run."""
    b, h, c, v = report["bookings"], report["holds"], report["change_to_viewer"], report["viewers"]
    spread = report["fanout_spread"]
    ver = report["verification"]
    mem = report["server_memory"]
    rows = [
        (
            "mode",
            f"{report['config']['mode']} on event {report['config']['event']} "
            f"({report['seats']:,} seats), {report['load_seconds']} s",
        ),
        (
            "bookings ok / conflict / busy / error",
            f"{b['ok']} / {b['conflict']} / {b['busy']} / {b['error']}  ({b['per_second']}/s)",
        ),
        (
            "holds ok / conflict / busy / error",
            f"{h['ok']} / {h['conflict']} / {h['busy']} / {h['error']}",
        ),
        (
            "booking latency p50 / p95 / p99",
            f"{_fmt(b['latency']['p50_ms'])} / {_fmt(b['latency']['p95_ms'])} / "
            f"{_fmt(b['latency']['p99_ms'])} ms",
        ),
        ("seat changes made", f"{report['changes']['made']} ({report['changes']['per_second']}/s)"),
        (
            "change->viewer p50 / p95 / p99 / max",
            f"{_fmt(c['p50_ms'])} / {_fmt(c['p95_ms'])} / {_fmt(c['p99_ms'])} / "
            f"{_fmt(c['max_ms'])} ms",
        ),
        (
            "fan-out spread after 1st viewer p50 / p99",
            f"{_fmt(spread['p50_ms'])} / {_fmt(spread['p99_ms'])} ms",
        ),
        ("deliveries seen / expected", f"{c['delivered']:,} / {c['expected_deliveries']:,}"),
        (
            "viewers connected start / end",
            f"{v['connected_at_start']} / {v['connected_at_end']} of {v['requested']}",
        ),
        ("connections failed / dropped", f"{v['connections_failed']} / {v['dropped']}"),
        (
            "frames per viewer mean (min-max)",
            f"{_fmt(v['frames']['mean'])} ({_fmt(v['frames']['min'])}-{_fmt(v['frames']['max'])})",
        ),
        ("bytes per viewer mean", _fmt(v["bytes"]["mean"])),
        (
            "server RSS start / peak / end",
            f"{mem['rss_mb_start']} / {mem['rss_mb_peak']} / {mem['rss_mb_end']} MB "
            f"(pids {', '.join(map(str, mem['pids']))})"
            if mem
            else "unknown (remote server)",
        ),
        (
            "double-booked seats",
            str(ver["double_booked_seats"] or "none")
            + ("" if ver["database_checked"] else " (answers only; database not reachable)"),
        ),
        ("viewers out of date", str(ver["viewers_out_of_date"])),
        ("booked but not sold", str(ver["booked_but_not_sold"] or "none")),
        ("server errors (5xx)", str(ver["server_errors"])),
        ("verification", "PASSED" if ver["passed"] else "FAILED"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _polyline(
    points: list[tuple[float, float]],
    *,
    sx: Callable[[float], float],
    sy: Callable[[float], float],
    colour: str,
) -> str:
    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'


def html_report(report: Report) -> str:
    """A self-contained page: latencies and bookings per second over the run, as SVG."""
    timeline = report["timeline"]
    series: dict[str, tuple[str, LatencyColumn]] = {
        "booking p50": ("#0e7490", "booking_p50_ms"),
        "booking p99": ("#7c3aed", "booking_p99_ms"),
        "change→viewer p50": ("#b45309", "change_p50_ms"),
        "change→viewer p99": ("#be185d", "change_p99_ms"),
    }
    width, height, pad = 900, 320, 50
    seconds = [row["second"] for row in timeline] or [0]
    values = [
        value for row in timeline for _, key in series.values() if (value := row[key]) is not None
    ]
    top = (percentile(sorted(values), 1.0) or 1.0) * 1.1

    def sx(x: float) -> float:
        return pad + (x - seconds[0]) / max(1, seconds[-1] - seconds[0]) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - y / top * (height - 2 * pad)

    lines = []
    legend = []
    for i, (name, (colour, key)) in enumerate(series.items()):
        points = [
            (float(row["second"]), value) for row in timeline if (value := row[key]) is not None
        ]
        if points:
            lines.append(_polyline(points, sx=sx, sy=sy, colour=colour))
        legend.append(
            f'<text x="{pad + i * 200}" y="20" fill="{colour}" font-size="13">'
            f"{html.escape(name)}</text>"
        )
    axis = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad}" y="{height - 15}" font-size="12">second {seconds[0]}</text>'
        f'<text x="{width - pad - 60}" y="{height - 15}" font-size="12">second {seconds[-1]}</text>'
        f'<text x="5" y="{pad}" font-size="12">{top:.0f} ms</text>'
    )
    rows = "".join(
        f"<tr><td>{r['second']}</td><td>{r['bookings']}</td><td>{r['conflicts']}</td>"
        f"<td>{r['errors']}</td><td>{_fmt(r['booking_p50_ms'])}</td><td>{_fmt(r['booking_p99_ms'])}</td>"
        f"<td>{_fmt(r['change_p50_ms'])}</td><td>{_fmt(r['change_p99_ms'])}</td></tr>"
        for r in timeline
    )
    verdict = "PASSED" if report["verification"]["passed"] else "FAILED"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Load test: {verdict}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2rem;max-width:960px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
pre{{background:#f4f4f4;padding:1rem;overflow:auto}}</style></head><body>
<h1>Load test — verification {verdict}</h1>
<pre>{html.escape(table(report))}</pre>
<h2>Latency over time (by the second the change was requested)</h2>
<svg width="{width}" height="{height}" role="img" aria-label="Latency over time">
{axis}{"".join(legend)}{"".join(lines)}</svg>
<h2>Per second</h2>
<table><thead><tr><th>s</th><th>bookings</th><th>conflicts</th><th>errors</th>
<th>booking p50 ms</th><th>booking p99 ms</th><th>change p50 ms</th><th>change p99 ms</th>
</tr></thead>
<tbody>{rows}</tbody></table>
<h2>Raw report</h2><pre>{html.escape(json.dumps(report, indent=2))}</pre>
</body></html>
"""
