"""Prints .ci/bench's results: every row with its reference from the same run, then the
ratios the targets are stated in. Usage: bench_summary.py RESULTS.tsv OUT_DIR"""

import re
import sys


def number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None


def p99(text: str) -> float | None:
    return number(r"(?:^|\s)p99=([\d.]+)ms", text)  # not client_lag_p99= or booking_p99=


def cpu_per_k(text: str) -> float | None:
    return number(r"cpu_per_1k_frames=([\d.]+)ms", text)


def ratio(ours: float | None, reference: float | None) -> str:
    if ours is None or not reference:
        return "?"
    return f"{ours / reference:.2f}x"


def main() -> None:
    with open(sys.argv[1]) as results:
        rows = [line.rstrip("\n").split("\t") for line in results if line.strip()]
    header = ["workload", "system", "result"]
    widths = [min(70, max(len(r[i]) for r in [*rows, header])) for i in range(2)]

    def show(r: list[str]) -> None:
        print(f"{r[0].ljust(widths[0])} | {r[1].ljust(widths[1])} | {r[2]}")

    print()
    show(header)
    print("-" * (sum(widths) + 20))
    for r in rows:
        show(r)

    def find(workload: str, system: str) -> str | None:
        for r in rows:
            if r[0].startswith(workload) and r[1].startswith(system):
                return r[2]
        return None

    ratios: list[tuple[str, str]] = []
    tps = {
        w: number(r"([\d.]+) TPS", find(w, "raw") or "")
        for w in ("pgbench: random", "pgbench: one event")
    }
    peer = find("booking: POST", "tutorial view")
    spread = find("booking: POST", "ours, spread")
    one = find("booking: every customer", "ours, one event")
    per_s = {
        name: number(r"([\d.]+) bookings/s", text or "")
        for name, text in (("peer", peer), ("spread", spread), ("one", one))
    }
    if per_s["spread"] is not None:
        ratios.append(
            (
                "bookings/s, ours (20 events) / tutorial view, 2 processes each",
                ratio(per_s["spread"], per_s["peer"]),
            )
        )
        ratios.append(
            (
                "bookings/s, ours (20 events) / pgbench random seat",
                ratio(per_s["spread"], tps["pgbench: random"]),
            )
        )
        ratios.append(
            (
                "bookings/s, tutorial view / pgbench random seat",
                ratio(per_s["peer"], tps["pgbench: random"]),
            )
        )
    if per_s["one"] is not None:
        ratios.append(
            (
                "bookings/s, ours on ONE event / pgbench one event (pg_event.sql)",
                ratio(per_s["one"], tps["pgbench: one event"]),
            )
        )

    for r in rows:
        workload = r[0]
        if not (workload.startswith("fan-out") or workload.startswith("scale")):
            continue
        if not r[1].startswith("ours"):
            continue
        raw = find(workload, "bare websockets")
        if raw is None:
            continue
        ratios.append((f"{workload}: p99 {r[1]} / bare", ratio(p99(r[2]), p99(raw))))
        ratios.append(
            (f"{workload}: CPU per frame {r[1]} / bare", ratio(cpu_per_k(r[2]), cpu_per_k(raw)))
        )
    only = find("fan-out: 1 viewer", "ours, bookings only")
    booking_cpu = number(r"server_cpu=([\d.]+)s", only or "")
    for r in rows:
        if r[0].startswith("fan-out") and "independent client" in r[1] and booking_cpu:
            raw = find(r[0], "bare websockets")
            cpu = number(r"server_cpu=([\d.]+)s", r[2])
            delivered = number(r"delivered=(\d+)", r[2])
            raw_per_k = cpu_per_k(raw or "")
            if cpu is not None and delivered:
                per_k = (cpu - booking_cpu) / delivered * 1e6
                ratios.append(
                    (
                        f"{r[0]}: fan-out CPU per frame (less {booking_cpu:g} s for the "
                        f"bookings alone: {per_k:.1f} ms per 1,000) / bare",
                        ratio(per_k, raw_per_k),
                    )
                )
    for r in rows:
        if r[1].endswith("our load test (booking->viewer)"):
            independent = find(r[0], r[1].replace("our load test", "independent client"))
            if independent:
                ratios.append(
                    (
                        f"{r[0]}: p99 our load test / independent client",
                        ratio(p99(r[2]), p99(independent)),
                    )
                )

    if ratios:
        print("\nratios (same run)")
        width = max(len(name) for name, _ in ratios)
        for name, value in ratios:
            print(f"  {name.ljust(width)}  {value}")

    grid: dict[tuple[int, int], dict[str, str]] = {}
    for r in rows:
        found = re.match(r"scale: (\d+) viewers, (\d+) changes/s", r[0])
        if found and "load test" not in r[1]:
            key = (int(found.group(1)), int(found.group(2)))
            grid.setdefault(key, {})["ours" if r[1].startswith("ours") else "bare"] = r[2]
    if grid:
        print(
            "\nscale (ours on 2 processes vs bare websockets; p99 change->viewer, lost, server CPU)"
        )
        print(
            "| viewers | changes/s | ours p99 | bare p99 | ratio | ours lost | bare lost "
            "| ours CPU s | bare CPU s |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for (n, rate), cell in sorted(grid.items()):
            ours, bare = cell.get("ours", ""), cell.get("bare", "")

            def cell_of(text: str, pattern: str) -> str:
                value = number(pattern, text)
                return "?" if value is None else f"{value:g}"

            p99_pattern, lost_pattern, cpu_pattern = (
                r"(?:^|\s)p99=([\d.]+)ms",
                r"lost=(\d+)",
                r"server_cpu=([\d.]+)s",
            )
            cells = [
                f"{n:,}",
                str(rate),
                cell_of(ours, p99_pattern) + " ms",
                cell_of(bare, p99_pattern) + " ms",
                ratio(p99(ours), p99(bare)),
                cell_of(ours, lost_pattern),
                cell_of(bare, lost_pattern),
                cell_of(ours, cpu_pattern),
                cell_of(bare, cpu_pattern),
            ]
            print("| " + " | ".join(cells) + " |")
    print(f"\nlogs and reports: {sys.argv[2]}")


if __name__ == "__main__":
    main()
