"""The clock and the counters the load test's latencies rest on."""

import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection
from types import SimpleNamespace

import pytest

from loadtest.report import client_report
from loadtest.runner import ProcessLag
from loadtest.stats import ChangeLog, LoopLag, clock


def send_clock(conn: Connection) -> None:
    conn.send(clock())


def test_the_clock_reads_alike_in_another_process():
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=send_clock, args=(theirs,))
    before = clock()
    child.start()
    reading = ours.recv()
    after = clock()
    child.join()
    assert before <= reading <= after


def test_observations_made_in_another_process_merge_into_the_latencies():
    here, there = ChangeLog(), ChangeLog()
    here.made(seat_ids=[1, 2], state="sold", request_started=100.0)
    here.observe(1, "sold", 100.05)
    there.observe(1, "sold", 100.08)
    there.observe(2, "sold", 100.10)
    there.observe(3, "held", 100.20)  # a change nobody here made: not counted
    here.merge(there.export())
    assert here.delivered() == 3
    assert sorted(round(x, 3) for x in here.latencies()[0]) == [0.05, 0.08, 0.1]


@pytest.mark.asyncio
async def test_loop_lag_sees_a_blocked_event_loop():
    lag = LoopLag()
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.12)
    start = clock()
    time.sleep(0.2)  # the event loop can do nothing else meanwhile
    await asyncio.sleep(0.12)
    task.cancel()
    lags = lag.between(start, clock())
    assert max(lags) >= 0.15
    assert min(lag.between(0, start)) < 0.05


def result_with_lags(*lags: ProcessLag, viewer_processes: int = 1) -> SimpleNamespace:
    config = SimpleNamespace(viewers=1000, viewer_processes=viewer_processes)
    return SimpleNamespace(run=SimpleNamespace(config=config), loop_lag=list(lags))


def test_a_lagging_client_is_called_out_with_the_remedy():
    busy = ProcessLag("main process", 1000, [0.002] * 95 + [0.3] * 5)
    client = client_report(result_with_lags(busy), change_p99_ms=400.0)
    assert client["loop_lag"][0]["p99_ms"] == 300.0
    assert client["warning"] is not None
    assert "main process" in client["warning"] and "--viewer-processes" in client["warning"]


def test_a_quiet_client_gets_no_warning():
    calm = [
        ProcessLag("main process (customers)", 0, [0.001] * 100),
        ProcessLag("viewer process 1", 500, [0.003] * 100),
        ProcessLag("viewer process 2", 500, [0.004] * 100),
    ]
    client = client_report(result_with_lags(*calm, viewer_processes=2), change_p99_ms=90.0)
    assert client["viewer_processes"] == 2
    assert [lag["p99_ms"] for lag in client["loop_lag"]] == [1.0, 3.0, 4.0]
    assert client["warning"] is None
