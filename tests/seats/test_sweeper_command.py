import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.management import call_command
from django.db import connection

from seats import services
from seats.models import Hold, Seat

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


def test_sweep_holds_releases_expired_holds(alice, bob, event, seat_ids, now):
    expired = services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now - timedelta(hours=1)
    )
    live = services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3], now=now)
    out = StringIO()

    call_command("sweep_holds", stdout=out)

    assert out.getvalue().strip() == "Released 2 seats from expired holds."
    states = dict(Seat.objects.filter(pk__in=seat_ids[:3]).values_list("pk", "state"))
    assert [states[pk] for pk in seat_ids[:3]] == ["available", "available", "held"]
    expired.refresh_from_db()
    live.refresh_from_db()
    assert expired.end_reason == Hold.EndReason.EXPIRED
    assert live.ended_at is None


def test_sweep_holds_rejects_a_bad_interval(db):
    with pytest.raises(Exception, match="--interval must be more than 0"):
        call_command("sweep_holds", "--loop", "--interval", "0")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sweep_loop_releases_holds_and_stops_cleanly_on_sigterm(alice, event, seat_ids, now):
    hold = services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now - timedelta(hours=1)
    )
    # The worker must use the test database this test writes to.
    test_db_url = urlsplit(os.environ["DATABASE_URL"])._replace(
        path="/" + connection.settings_dict["NAME"]
    )
    env = os.environ | {
        "DATABASE_URL": urlunsplit(test_db_url),
        "SECRET_KEY": "sweeper-test",
    }
    worker = subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "sweep_holds", "--loop", "--interval", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # A deadline, not a timing assert: the worker only has to get there eventually.
        deadline = time.monotonic() + 30
        while not Hold.objects.get(pk=hold.pk).ended_at and time.monotonic() < deadline:
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        connection.close()

    assert worker.returncode == 0, err
    assert out.strip().splitlines()[-1] == "Sweeper stopped."
    assert Hold.objects.get(pk=hold.pk).end_reason == Hold.EndReason.EXPIRED
    assert set(Seat.objects.filter(pk__in=seat_ids[:2]).values_list("state", flat=True)) == {
        "available"
    }
