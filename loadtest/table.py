"""The summary printed at the end of a run."""

from collections import Counter

from .shapes import Report


def stopped_line(report: Report) -> str:
    """When and why the load ended, e.g. "at 8.9 s of --duration 30 s: all seats sold"."""
    stopped = report["stopped"]
    limit = f" of --duration {report['config']['duration']:g} s" if stopped["early"] else ""
    return f"at {stopped['at_seconds']:.1f} s{limit}: {stopped['text']}"


def retries_line(report: Report) -> str:
    """How many holds and bookings were sent twice, why, and how the second tries ended."""
    holds, bookings = report["holds"]["retries"], report["bookings"]["retries"]
    count = {
        name: r["after_no_answer"] + r["after_503"]
        for name, r in (("holds", holds), ("bookings", bookings))
    }
    line = f"holds {count['holds']} / bookings {count['bookings']}"
    if not count["holds"] and not count["bookings"]:
        return line
    no_answer = holds["after_no_answer"] + bookings["after_no_answer"]
    cut_off = holds["cut_off"] + bookings["cut_off"]
    after_503 = holds["after_503"] + bookings["after_503"]
    ended = Counter(holds["outcomes"]) + Counter(bookings["outcomes"])
    then = ", ".join(f"{outcome} {n}" for outcome, n in sorted(ended.items()))
    return (
        f"{line} (after no answer {no_answer}, {cut_off} of them cut off; after 503 "
        f"{after_503}; then {then})"
    )


def lag_line(report: Report) -> str:
    """Each client process's event-loop lag during the load, e.g. "main process 1.2 / 4.0 ms"."""
    return "; ".join(
        f"{lag['process']} {fmt(lag['p99_ms'])} / {fmt(lag['max_ms'])} ms"
        for lag in report["client"]["loop_lag"]
    )


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value:,}{unit}"


def cpu_line(report: Report) -> str:
    """Server CPU seconds from the start of the load until the viewers caught up, and per
    thousand frames delivered."""
    mem = report["server_memory"]
    seconds = mem["cpu_seconds_load"] if mem else None
    if seconds is None:
        return "unknown (remote server)"
    delivered = report["change_to_viewer"]["delivered"]
    per_k = f", {seconds / delivered * 1e6:.1f} ms per 1,000 deliveries" if delivered else ""
    return f"{seconds} s{per_k}"


def table(report: Report) -> str:
    """The human summary printed at the end of a run."""
    b, h, c, v = report["bookings"], report["holds"], report["change_to_viewer"], report["viewers"]
    spread = report["fanout_spread"]
    ver = report["verification"]
    mem = report["server_memory"]
    warning = report["client"]["warning"]
    rows = [
        (
            "mode",
            f"{report['config']['mode']} on event {report['config']['event']} "
            f"({report['seats']:,} seats), {report['load_seconds']} s",
        ),
        ("stopped", stopped_line(report)),
        (
            "bookings ok / conflict / busy / error",
            f"{b['ok']} / {b['conflict']} / {b['busy']} / {b['error']}  ({b['per_second']}/s)",
        ),
        (
            "holds ok / conflict / busy / error",
            f"{h['ok']} / {h['conflict']} / {h['busy']} / {h['error']}",
        ),
        ("retries (same Idempotency-Key)", retries_line(report)),
        (
            "booking latency p50 / p95 / p99",
            f"{fmt(b['latency']['p50_ms'])} / {fmt(b['latency']['p95_ms'])} / "
            f"{fmt(b['latency']['p99_ms'])} ms",
        ),
        ("seat changes made", f"{report['changes']['made']} ({report['changes']['per_second']}/s)"),
        (
            "change->viewer p50 / p95 / p99 / max",
            f"{fmt(c['p50_ms'])} / {fmt(c['p95_ms'])} / {fmt(c['p99_ms'])} / {fmt(c['max_ms'])} ms",
        ),
        (
            "fan-out spread after 1st viewer p50 / p99",
            f"{fmt(spread['p50_ms'])} / {fmt(spread['p99_ms'])} ms",
        ),
        ("deliveries seen / expected", f"{c['delivered']:,} / {c['expected_deliveries']:,}"),
        (
            "viewers connected start / end",
            f"{v['connected_at_start']} / {v['connected_at_end']} of {v['requested']}",
        ),
        (
            "connections failed / dropped / failed over",
            f"{v['connections_failed']} / {v['dropped']} / {v['failovers']}",
        ),
        (
            "frames per viewer mean (min-max)",
            f"{fmt(v['frames']['mean'])} ({fmt(v['frames']['min'])}-{fmt(v['frames']['max'])})",
        ),
        ("bytes per viewer mean", fmt(v["bytes"]["mean"])),
        ("client loop lag p99 / max", lag_line(report)),
        *([("WARNING: client-bound", warning)] if warning else []),
        (
            "server RSS start / peak / end",
            f"{mem['rss_mb_start']} / {mem['rss_mb_peak']} / {mem['rss_mb_end']} MB "
            f"(pids {', '.join(map(str, mem['pids']))})"
            if mem
            else "unknown (remote server)",
        ),
        ("server CPU during the load", cpu_line(report)),
        (
            "double-booked seats",
            str(ver["double_booked_seats"] or "none")
            + ("" if ver["database_checked"] else " (answers only; database not reachable)"),
        ),
        ("viewers out of date", str(ver["viewers_out_of_date"])),
        ("booked but not sold", str(ver["booked_but_not_sold"] or "none")),
        ("sold but not booked (unanswered)", str(ver["sold_but_not_booked"] or "none")),
        ("server errors (5xx)", str(ver["server_errors"])),
        ("verification", "PASSED" if ver["passed"] else "FAILED"),
        *(("note", note) for note in report["notes"]),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
