"""`manage.py loadtest` in rush mode across two web processes while faults are injected from
outside, as an operator's rehearsal would meet them: one process is SIGKILLed with customers'
requests in flight, then the Redis the processes share is restarted. The run goes on through
the other --url and its verification must still pass."""

import json
import signal
import threading
import time

import pytest

from seats.models import Booking, BookingSeat, Seat
from tests.servers import Server

from .servers import start_loadtest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

VIEWERS = 40
CUSTOMERS = 24
LOAD_SECONDS = 14


class Lines:
    """A process's stderr read in a thread, each line with the monotonic time it came."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, prefix: str, timeout: float) -> float:
        """When the first line starting with `prefix` came; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in self.lines:
                if line.startswith(prefix):
                    return at
            time.sleep(0.05)
        raise AssertionError(f"no {prefix!r} line within {timeout} s: {self.text()}")

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def test_rush_verifies_through_a_redis_restart_and_a_killed_web_process(tmp_path, throwaway_redis):
    # Rate limits off: a load test is a bot by design (README, "Rate limits").
    env = {
        "REDIS_URL": throwaway_redis.url,
        "RATE_LIMIT_SEAT_ACTIONS": "off",
        "RATE_LIMIT_BOOKINGS": "off",
    }
    doomed, survivor = Server(tmp_path, "a", **env).start(), Server(tmp_path, "b", **env).start()
    loadtest = None
    try:
        # The first --url is the one killed: the run's own reads of the map (the final
        # truth included) must fail over too. Enough hot seats that the rush outlasts
        # the faults (the test checks it did).
        loadtest = start_loadtest(
            doomed.env,
            tmp_path,
            *("--url", doomed.origin, "--url", survivor.origin),
            *("--viewers", str(VIEWERS), "--customers", str(CUSTOMERS), "--mode", "rush"),
            *("--seats", "2500", "--hot", "2000", "--group", "2"),
            *("--duration", str(LOAD_SECONDS), "--settle", "20"),
        )
        stderr = Lines(loadtest.stderr)
        load_started = stderr.wait_for("load: ", timeout=60)

        # Every viewer is connected when the load starts: half of them, and half of the
        # customers, are on the process killed now.
        time.sleep(1.5)
        doomed.stop(signal.SIGKILL)
        time.sleep(2.5)  # its viewers reconnect to the survivor
        throwaway_redis.stop()  # as a crash: every subscription and pooled connection breaks
        time.sleep(1.5)
        throwaway_redis.start()  # on the same port, empty
        redis_back = time.monotonic() - load_started

        assert loadtest.wait(timeout=LOAD_SECONDS + 60) == 0, loadtest.stdout.read() + stderr.text()
        stderr.thread.join(5)
        table = loadtest.stdout.read()
    finally:
        if loadtest is not None and loadtest.poll() is None:
            loadtest.kill()
        doomed.stop()
        survivor.stop()

    report = json.loads((tmp_path / "report.json").read_text())
    context = table + "\n" + stderr.text()

    # The faults landed in the load, not before or after it: it went on after Redis was
    # back, and customers kept booking (those of the killed process through the survivor).
    assert report["stopped"]["at_seconds"] > redis_back + 2, context
    assert any(
        row["second"] > redis_back + 1 and row["bookings"] > 0 for row in report["timeline"]
    ), context

    verification = report["verification"]
    assert verification["double_booked_seats"] == [], context
    assert verification["database_checked"] is True
    assert verification["viewers_out_of_date"] == 0, context
    assert verification["booked_but_not_sold"] == [], context
    assert verification["sold_but_not_booked"] == [], context
    assert verification["server_errors"] == 0, context
    assert verification["passed"] is True, context

    # Requests the kill cut off were retried with their key through the survivor and
    # answered there: none ended without an answer, each counted once, by that answer.
    holds, bookings = report["holds"], report["bookings"]
    cut_off = holds["retries"]["cut_off"] + bookings["retries"]["cut_off"]
    assert cut_off >= 1, context
    assert holds["error"] == bookings["error"] == 0, context
    for outcomes in (holds, bookings):
        retries = outcomes["retries"]
        assert (
            sum(retries["outcomes"].values()) == retries["after_no_answer"] + retries["after_503"]
        )

    # The database agrees with the answers: one booking per "ok", one sale per seat booked.
    event_id = report["config"]["event"]
    assert Booking.objects.filter(event_id=event_id).count() == bookings["ok"] > 0
    sold = set(Seat.objects.filter(event_id=event_id, state="sold").values_list("pk", flat=True))
    active = list(
        BookingSeat.objects.filter(booking__event_id=event_id, active=True).values_list(
            "seat_id", flat=True
        )
    )
    assert len(active) == len(set(active)) == len(sold) == bookings["seats_booked"]
    assert set(active) == sold

    # The killed process's viewers were dropped and moved to the survivor, and the Redis
    # restart dropped all of them there (1013); all ended connected, their maps equal to the
    # server's (viewers_out_of_date above).
    viewers = report["viewers"]
    assert viewers["connected_at_end"] == VIEWERS, context
    assert viewers["dropped"] >= VIEWERS // 2 + VIEWERS, context
    assert viewers["failovers"] >= VIEWERS // 2, context
