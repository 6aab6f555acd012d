"""--viewer-processes: the viewers spread over client processes of their own, against a
real server, with their receipt times merged into one account."""

import multiprocessing
import threading
import time

from loadtest.fleet_process import receive, run_loop

from .servers import run_loadtest


def test_viewers_in_two_processes_see_every_change_and_report_their_own_lag(
    sqlite_server, tmp_path
):
    env, url = sqlite_server
    done, report = run_loadtest(
        env,
        tmp_path,
        *("--url", url, "--viewers", "5", "--viewer-processes", "2", "--customers", "3"),
        *("--mode", "steady", "--rate", "10", "--duration", "2", "--seats", "100"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["verification"]["passed"] is True
    assert report["verification"]["viewers_out_of_date"] == 0

    # Every viewer of both processes saw every booking: their receipts were merged.
    changes = report["change_to_viewer"]
    assert report["changes"]["made"] >= 10
    assert changes["delivered"] == changes["expected_deliveries"] == 5 * report["changes"]["made"]
    viewers = report["viewers"]
    assert viewers["connected_at_end"] == 5 and viewers["frames"]["min"] >= 10

    # Receipt times from the viewer processes compare with the request times taken here:
    # the latencies are neither clamped to zero nor off by the processes' start-up times.
    run_ms = (report["load_seconds"] + report["settle_seconds"]) * 1000
    assert 0 < changes["p50_ms"] <= changes["max_ms"] < run_ms
    assert report["fanout_spread"]["max_ms"] < run_ms

    client = report["client"]
    assert client["viewer_processes"] == 2
    lags = client["loop_lag"]
    assert [(lag["process"], lag["viewers"]) for lag in lags] == [
        ("main process (customers)", 0),
        ("viewer process 1", 3),
        ("viewer process 2", 2),
    ]
    # About 20 samples a second in each process over the 2 s of load.
    assert all(lag["samples"] >= 10 and lag["max_ms"] is not None for lag in lags)
    assert "client loop lag p99 / max" in done.stdout
    assert "viewer process 2" in done.stdout


def test_messages_of_megabytes_cross_the_pipe_both_ways_on_the_event_loop():
    """A viewer process's result (every receipt time) runs to megabytes."""
    ours, theirs = multiprocessing.Pipe()
    big = {"observations": {(seat, "sold"): bytes(800) for seat in range(5000)}}
    echoed: list[object] = []

    async def exchange() -> object:
        def send_later() -> None:
            time.sleep(0.2)  # receive() is waiting by then
            theirs.send(big)

        sender = threading.Thread(target=send_later)
        sender.start()
        received = await receive(ours)
        sender.join()
        reader = threading.Thread(target=lambda: echoed.append(theirs.recv()))
        reader.start()
        ours.send(received)  # after receive(), on the same descriptor
        reader.join()
        return received

    assert run_loop(exchange()) == big
    assert echoed == [big]
