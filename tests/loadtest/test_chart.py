"""The HTML report's latency chart, read the way an operator reads it."""

import re
import xml.etree.ElementTree as ET

from loadtest.chart import latency_chart
from loadtest.shapes import TimelineRow

SVG = "{http://www.w3.org/2000/svg}"


def second(n: int, *, change_p99: float, booking_p99: float = 60.0) -> TimelineRow:
    return {
        "second": n,
        "bookings": 10,
        "conflicts": 0,
        "errors": 0,
        "booking_p50_ms": 20.0 + n % 3,
        "booking_p99_ms": booking_p99,
        "change_p50_ms": 30.0 + n % 4,
        "change_p99_ms": change_p99,
    }


def thirty_seconds(spike: float | None = None) -> list[TimelineRow]:
    """p99 between 80 and 120 ms; with `spike`, one second's p99 jumps to it."""
    rows = [second(n, change_p99=80.0 + (n % 5) * 10) for n in range(30)]
    if spike is not None:
        rows[12] = second(12, change_p99=spike)
    return rows


def plot(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # also proves the SVG is well-formed


def points(root: ET.Element, series: str) -> list[tuple[float, float]]:
    line = next(p for p in root.iter(f"{SVG}polyline") if p.get("data-series") == series)
    return [tuple(map(float, pair.split(","))) for pair in line.get("points", "").split()]


def plot_area(root: ET.Element) -> tuple[float, float]:
    """The y pixel range of the plot: the vertical axis line's ends (top, bottom)."""
    axes = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "axes")
    vertical = next(line for line in axes if line.get("x1") == line.get("x2"))
    return float(vertical.get("y1", 0)), float(vertical.get("y2", 0))


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_chart_has_a_grid_labelled_axes_with_units_and_a_legend():
    root = plot(latency_chart(thirty_seconds()))
    labels = texts(root)
    assert "latency (ms)" in labels
    assert any(label.startswith("time since the load started (s)") for label in labels)
    grid = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "grid")
    assert len(list(grid)) >= 8  # horizontal and vertical lines
    # Tick values on both axes: 0 and round numbers of milliseconds and seconds.
    assert "0" in labels and "100" in labels and "25" in labels
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "legend")
    legend_names = ["".join(t.itertext()) for t in legend.iter(f"{SVG}text")]
    assert legend_names == [
        "booking p50",
        "booking p99",
        "change→viewer p50",
        "change→viewer p99",
    ]


def test_without_outliers_nothing_is_clipped_and_every_point_is_inside_the_plot():
    root = plot(latency_chart(thirty_seconds()))
    top, bottom = plot_area(root)
    assert not [p for p in root.iter(f"{SVG}path") if p.get("class") == "clipped"]
    for series in ("booking p99", "change→viewer p99"):
        assert all(top <= y <= bottom for _, y in points(root, series))
    # The highest p99 (120 ms) is drawn in the upper part of the plot, not squeezed low.
    highest = min(y for _, y in points(root, "change→viewer p99"))
    assert highest < top + (bottom - top) / 2


def spread(ys: list[float]) -> float:
    return max(ys) - min(ys)


def test_one_spike_does_not_flatten_the_p99_line():
    calm = plot(latency_chart(thirty_seconds()))
    calm_ys = [y for _, y in points(calm, "change→viewer p99")]
    root = plot(latency_chart(thirty_seconds(spike=5000.0)))
    top, bottom = plot_area(root)
    ys = [y for _, y in points(root, "change→viewer p99")]
    typical = ys[:12] + ys[13:]
    # The ordinary seconds (80-120 ms) take as much of the plot's height as they do without
    # the spike (on an axis running to 5,000 ms they would differ by about 2 pixels).
    assert spread(calm_ys) > 0.15 * (bottom - top)
    assert spread(typical) >= 0.9 * spread(calm_ys[:12] + calm_ys[13:])
    # The spike is drawn at the top edge, marked as clipped, with its real value.
    assert ys[12] == top
    clipped = [p for p in root.iter(f"{SVG}path") if p.get("class") == "clipped"]
    assert [float(p.get("data-value", 0)) for p in clipped] == [5000.0]
    assert "5,000 ms" in texts(root)
    assert any(re.match(r"above [\d,]+ ms \(clipped", label) for label in texts(root))


def test_an_empty_run_still_draws_labelled_axes():
    root = plot(latency_chart([]))
    assert "latency (ms)" in texts(root) and "no data" in texts(root)
