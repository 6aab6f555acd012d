"""python manage.py loadtest: viewers watch one event while customers rush its best seats;
afterwards it proves that no seat was sold twice and that every viewer shows the truth."""

import json
import secrets
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from loadtest import preparation
from loadtest.chart import html_report
from loadtest.config import MODES, Config, CustomerLogin, LoadTestError
from loadtest.fleet_process import run_loop
from loadtest.report import build
from loadtest.runner import run_load
from loadtest.table import table


class Command(BaseCommand):
    help = (
        "Drives a running server with V WebSocket viewers and B customers (rush: everyone "
        "after the same best seats; random; steady: N changes per second), then verifies "
        "that no seat was double-booked and every viewer's map equals the server's. "
        "Exits non-zero when verification fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            action="append",
            help="Server base URL (default http://127.0.0.1:8000). Repeat to "
            "spread viewers and customers over several processes.",
        )
        parser.add_argument("--event", type=int, help="Event to use (default: create one).")
        parser.add_argument(
            "--seats",
            type=int,
            default=1000,
            help="Seats of the event created when --event is not given.",
        )
        parser.add_argument("--viewers", type=int, default=100)
        parser.add_argument("--customers", type=int, default=20)
        parser.add_argument("--mode", choices=MODES, default="rush")
        parser.add_argument(
            "--rate",
            type=float,
            default=20.0,
            help="steady: seat changes (single-seat bookings) per second.",
        )
        parser.add_argument(
            "--duration",
            type=float,
            default=30.0,
            help="Longest the load runs, in seconds (rush ends sooner when "
            "the hot seats are gone).",
        )
        parser.add_argument(
            "--bookings", type=int, help="Stop after this many successful bookings."
        )
        parser.add_argument(
            "--hot", type=int, default=20, help="rush: how many best seats everyone wants."
        )
        parser.add_argument(
            "--group",
            type=int,
            default=2,
            help="Seats per hold/booking (rush: exactly; random: up to).",
        )
        parser.add_argument(
            "--users-file",
            help="Existing customers, one 'username[:password]' per line; "
            "they log in through /accounts/login/.",
        )
        parser.add_argument(
            "--password",
            help="Password for --users-file lines without one "
            "(and for customers created with --login form).",
        )
        parser.add_argument(
            "--login",
            choices=("session", "form", "signup"),
            default="session",
            help="How created customers log in: a session written to the "
            "database (default, needs the server's DATABASE_URL and "
            "SECRET_KEY), the login form, or the sign-up form (any "
            "server).",
        )
        parser.add_argument(
            "--settle",
            type=float,
            default=15.0,
            help="Longest wait for viewers to catch up after the load.",
        )
        parser.add_argument(
            "--server-pid",
            type=int,
            action="append",
            default=[],
            help="Server process(es) to measure (default: whatever listens "
            "on a local --url's port).",
        )
        parser.add_argument(
            "--deflate",
            action="store_true",
            help="Viewers negotiate permessage-deflate, as browsers do.",
        )
        parser.add_argument(
            "--viewer-processes",
            type=int,
            default=1,
            help="Spread the viewers over this many client processes (the customers stay in "
            "this one), so that one event loop's own lag is not measured as fan-out latency. "
            "1: the viewers share this process with the customers.",
        )
        parser.add_argument("--seed", type=int, help="Random seed for seat choices.")
        parser.add_argument("--report", help="Write the JSON report here.")
        parser.add_argument("--html-report", help="Write an HTML report (latency over time).")
        parser.add_argument("--quiet", action="store_true", help="No progress output.")

    # Django hands the parsed options over as Any; they are read into typed values at once.
    def handle(self, *args: str, **options: Any) -> None:
        for name in ("viewers", "customers", "seats", "hot", "group", "viewer_processes"):
            minimum = 0 if name == "viewers" else 1
            if options[name] < minimum:
                raise CommandError(f"--{name.replace('_', '-')} must be at least {minimum}.")
        if options["rate"] <= 0 or options["duration"] <= 0:
            raise CommandError("--rate and --duration must be positive.")
        urls = [u.rstrip("/") for u in (options["url"] or ["http://127.0.0.1:8000"])]
        tag = preparation.new_tag()
        event_id = options["event"] or preparation.create_event(
            seat_count=options["seats"], tag=tag
        )
        config = Config(
            urls=urls,
            event_id=event_id,
            viewers=options["viewers"],
            customers=options["customers"],
            mode=options["mode"],
            rate=options["rate"],
            duration=options["duration"],
            bookings=options["bookings"],
            hot=options["hot"],
            group=options["group"],
            settle=options["settle"],
            deflate=options["deflate"],
            viewer_processes=options["viewer_processes"],
            quiet=options["quiet"],
            server_pids=options["server_pid"],
            customer_logins=self.customer_logins(options, tag),
            seed=options["seed"],
        )
        if not options["quiet"]:
            self.stderr.write(
                f"event {event_id}, {config.viewers} viewers, "
                f"{len(config.customer_logins)} customers, {config.mode} mode, on "
                + ", ".join(urls)
            )
        try:
            result = run_loop(run_load(config))
        except LoadTestError as exc:
            raise CommandError(str(exc)) from exc

        if preparation.database_matches(event_id=event_id, seat_ids=result.seat_ids):
            sold_twice = preparation.seats_sold_twice(event_id=event_id)
        else:
            sold_twice = None
        report = build(result, db_double_booked=sold_twice)
        self.stdout.write(table(report))
        if options["report"]:
            Path(options["report"]).write_text(json.dumps(report, indent=2))
        if options["html_report"]:
            Path(options["html_report"]).write_text(html_report(report))
        if not report["verification"]["passed"]:
            raise CommandError("Verification failed: see the table above.")

    def customer_logins(self, options: dict[str, Any], tag: str) -> list[CustomerLogin]:
        count: int = options["customers"]
        given_password: str | None = options["password"]
        if options["users_file"]:
            logins: list[CustomerLogin] = []
            for line in Path(options["users_file"]).read_text().splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                username, _, password = line.partition(":")
                password = password or given_password or ""
                if not password:
                    raise CommandError(
                        f"No password for {username}: add ':password' or give --password."
                    )
                logins.append(CustomerLogin("login", username=username, password=password))
            if not logins:
                raise CommandError("The users file lists nobody.")
            return logins[:count]
        if options["login"] == "signup":
            password = given_password or secrets.token_urlsafe(12)
            return [
                CustomerLogin("signup", username=f"lt-{tag}-{n}", password=password)
                for n in range(1, count + 1)
            ]
        if options["login"] == "form":
            password = given_password or secrets.token_urlsafe(12)
            users = preparation.create_customers(count=count, tag=tag, password=password)
            return [CustomerLogin("login", username=u, password=p) for u, p in users]
        users = preparation.create_customers(count=count, tag=tag, password=None)
        cookies = preparation.session_cookies([username for username, _ in users])
        return [CustomerLogin("cookies", cookies=c) for c in cookies]
