"""The HTML report: the table, latency over time as an SVG chart, the per-second numbers."""

import html
import json
import math
from dataclasses import dataclass
from typing import Literal

from .shapes import Report, TimelineRow
from .stats import percentile
from .table import fmt, stopped_line, table

LatencyColumn = Literal["booking_p50_ms", "booking_p99_ms", "change_p50_ms", "change_p99_ms"]


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    column: LatencyColumn
    dashed: bool = False


SERIES = (
    Series("booking p50", "#0e7490", "booking_p50_ms", dashed=True),
    Series("booking p99", "#7c3aed", "booking_p99_ms"),
    Series("change→viewer p50", "#b45309", "change_p50_ms", dashed=True),
    Series("change→viewer p99", "#be185d", "change_p99_ms"),
)
WIDTH, HEIGHT = 900, 400
LEFT, RIGHT, TOP, BOTTOM = 76, 24, 56, 60
# Clipped points get their value written next to them, up to this many (the rest: a marker).
MAX_CLIP_LABELS = 8


def nice_step(span: float, ticks: int) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks."""
    raw = max(span, 1e-9) / ticks
    magnitude: float = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def latency_ceiling(values: list[float]) -> float:
    """Where the latency axis should end: at the highest value that is not an outlier (more
    than twice the 95th percentile), so that one spike does not squash every line flat
    against the bottom. Points above the axis are drawn clipped, with their value."""
    limit = 2 * (percentile(sorted(values), 0.95) or 0.0)
    return max((value for value in values if value <= limit), default=1.0) or 1.0


def _text(x: float, y: float, content: str, **attributes: str) -> str:
    extra = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{value}"' for name, value in attributes.items()
    )
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{html.escape(content)}</text>'


def latency_chart(timeline: list[TimelineRow]) -> str:
    """An SVG line chart of the booking and change->viewer p50/p99 per second of the load:
    grid, labelled axes, legend; points above the axis ceiling marked and labelled."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [
        value for row in timeline for series in SERIES if (value := row[series.column]) is not None
    ]
    ceiling = latency_ceiling(values)
    y_step = nice_step(ceiling, 5)
    y_top = math.ceil(ceiling / y_step - 1e-9) * y_step
    last_second = max((row["second"] for row in timeline), default=0)
    x_end = max(last_second, 1)
    x_step = max(1, round(nice_step(x_end, 10)))

    def sx(second: float) -> float:
        return LEFT + second / x_end * plot_w

    def sy(ms: float) -> float:
        return TOP + plot_h - min(ms, y_top) / y_top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="system-ui, sans-serif" '
        'font-size="12" aria-label="Latency per second of the load, in milliseconds">',
        '<g class="grid" stroke="#e5e7eb" stroke-width="1">',
    ]
    y_ticks = [i * y_step for i in range(round(y_top / y_step) + 1)]
    x_ticks = list(range(0, x_end + 1, x_step))
    for tick in y_ticks:
        parts.append(
            f'<line x1="{LEFT}" y1="{sy(tick):.1f}" x2="{LEFT + plot_w}" y2="{sy(tick):.1f}"/>'
        )
    for tick in x_ticks:
        parts.append(
            f'<line x1="{sx(tick):.1f}" y1="{TOP}" x2="{sx(tick):.1f}" y2="{TOP + plot_h}"/>'
        )
    parts.append("</g>")
    parts.append(
        f'<g class="axes" stroke="#6b7280"><line x1="{LEFT}" y1="{TOP + plot_h}" '
        f'x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/></g>'
    )
    parts.extend(
        _text(LEFT - 6, sy(tick) + 4, f"{tick:,.{_decimals(y_step)}f}", text_anchor="end")
        for tick in y_ticks
    )
    parts.extend(
        _text(sx(tick), TOP + plot_h + 16, f"{tick}", text_anchor="middle") for tick in x_ticks
    )
    parts.append(
        _text(
            LEFT + plot_w / 2,
            HEIGHT - 12,
            "time since the load started (s), by the second the request was sent",
            text_anchor="middle",
            class_="axis-label",
        )
    )
    parts.append(
        _text(
            16,
            TOP + plot_h / 2,
            "latency (ms)",
            text_anchor="middle",
            transform=f"rotate(-90 16 {TOP + plot_h / 2:.1f})",
            class_="axis-label",
        )
    )

    clipped: list[tuple[Series, int, float]] = []
    for series in SERIES:
        points = [
            (row["second"], value) for row in timeline if (value := row[series.column]) is not None
        ]
        dash = ' stroke-dasharray="6 4"' if series.dashed else ""
        coords = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in points)
        parts.append(
            f'<polyline data-series="{html.escape(series.name)}" fill="none" '
            f'stroke="{series.colour}" stroke-width="2"{dash} points="{coords}"/>'
        )
        for second, value in points:
            parts.append(
                f'<circle cx="{sx(second):.1f}" cy="{sy(value):.1f}" r="2.5" '
                f'fill="{series.colour}"><title>{html.escape(series.name)}, second {second}: '
                f"{value:,.1f} ms</title></circle>"
            )
            if value > y_top:
                clipped.append((series, second, value))
    for index, (series, second, value) in enumerate(clipped):
        x = sx(second)
        parts.append(
            f'<path class="clipped" data-value="{value}" d="M{x - 5:.1f},{TOP - 1} '
            f'L{x:.1f},{TOP - 9} L{x + 5:.1f},{TOP - 1} Z" fill="{series.colour}"/>'
        )
        if index < MAX_CLIP_LABELS:
            parts.append(_text(x + 7, TOP - 2, f"{value:,.0f} ms", fill=series.colour))

    x = float(LEFT)
    parts.append('<g class="legend">')
    for series in SERIES:
        dash = ' stroke-dasharray="6 4"' if series.dashed else ""
        parts.append(
            f'<line x1="{x:.0f}" y1="18" x2="{x + 24:.0f}" y2="18" stroke="{series.colour}" '
            f'stroke-width="2"{dash}/>'
        )
        parts.append(_text(x + 30, 22, series.name))
        x += 42 + 7.2 * len(series.name)
    if clipped:
        parts.append(f'<path d="M{x:.0f},22 L{x + 5:.0f},13 L{x + 10:.0f},22 Z" fill="#6b7280"/>')
        parts.append(_text(x + 16, 22, f"above {y_top:,.0f} ms (clipped, value shown)"))
    parts.append("</g>")
    if not values:
        parts.append(_text(LEFT + plot_w / 2, TOP + plot_h / 2, "no data", text_anchor="middle"))
    parts.append("</svg>")
    return "\n".join(parts)


def _decimals(step: float) -> int:
    return 0 if step >= 1 else min(3, math.ceil(-math.log10(step)))


def html_report(report: Report) -> str:
    """A self-contained page: the summary, the latency chart, the per-second numbers and
    the raw JSON report."""
    timeline = report["timeline"]
    rows = "".join(
        f"<tr><td>{r['second']}</td><td>{r['bookings']}</td><td>{r['conflicts']}</td>"
        f"<td>{r['errors']}</td><td>{fmt(r['booking_p50_ms'])}</td>"
        f"<td>{fmt(r['booking_p99_ms'])}</td><td>{fmt(r['change_p50_ms'])}</td>"
        f"<td>{fmt(r['change_p99_ms'])}</td></tr>"
        for r in timeline
    )
    verdict = "PASSED" if report["verification"]["passed"] else "FAILED"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Load test: {verdict}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2rem;max-width:960px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
pre{{background:#f4f4f4;padding:1rem;overflow:auto}}</style></head><body>
<h1>Load test — verification {verdict}</h1>
<p>Stopped {html.escape(stopped_line(report))}.</p>
<pre>{html.escape(table(report))}</pre>
<h2>Latency per second</h2>
{latency_chart(timeline)}
<h2>Per second</h2>
<table><thead><tr><th>s</th><th>bookings</th><th>conflicts</th><th>errors</th>
<th>booking p50 ms</th><th>booking p99 ms</th><th>change→viewer p50 ms</th>
<th>change→viewer p99 ms</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Raw report</h2><pre>{html.escape(json.dumps(report, indent=2))}</pre>
</body></html>
"""
