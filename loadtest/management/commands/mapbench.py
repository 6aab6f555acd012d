"""python manage.py mapbench: how soon a big seat map is usable in Chromium, and how soon a
click shows the seat held. Prints numbers; it asserts nothing.

"Usable" is measured in the page, from the start of navigation: the document parsed, every
DOMContentLoaded handler run (htmx wires the form, the live socket starts), seatmap.js has
fitted the plan (its "seatmap-ready" mark), and the next frame painted. "Click to held" is
from the pointer going down on a free seat to that seat's element showing data-state="held"
(the answer's out-of-band swap), zoomed in on the section first as a customer would be.
"""

import gzip
import io
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.models import Event

BENCH_USER = "mapbench"
ROOT = Path(__file__).resolve().parents[3]

# Resolves (in the page) to the time the map became usable; see the module docstring.
USABLE_SCRIPT = """
window.__usable = new Promise((resolve) => {
  document.addEventListener("DOMContentLoaded", () => {
    setTimeout(() => {  // after every other DOMContentLoaded handler
      const ready = () => requestAnimationFrame(() => requestAnimationFrame(() => {
        const mark = performance.getEntriesByName("seatmap-ready")[0];
        resolve({ usable: performance.now(), ready: mark ? mark.startTime : null });
      }));
      if (performance.getEntriesByName("seatmap-ready").length) ready();
      else new PerformanceObserver((list, observer) => { observer.disconnect(); ready(); })
        .observe({ entryTypes: ["mark"] });
    }, 0);
  });
});
"""

# Clicks the free seat nearest the view's middle and resolves to ms from pointerdown to held.
CLICK_SCRIPT = """
async () => {
  const view = document.querySelector(".map-view").getBoundingClientRect();
  const seats = [...document.querySelectorAll('.seat[data-state="available"]')];
  let best = null, bestD = Infinity;
  for (const s of seats) {
    const r = s.getBoundingClientRect();
    const d = Math.hypot(r.x + r.width / 2 - (view.x + view.width / 2),
                         r.y + r.height / 2 - (view.y + view.height / 2));
    if (d < bestD) { bestD = d; best = s; }
  }
  const r = best.getBoundingClientRect();
  return { id: best.id, x: r.x + r.width / 2, y: r.y + r.height / 2, size: r.width };
}
"""
# Arms a watch on the seat: window.__held resolves to ms from pointerdown to data-state
# "held" (-1 after 10 s: the click did not pick it).
WAIT_HELD_SCRIPT = """
(id) => {
  let down = null;
  document.addEventListener("pointerdown", () => { down = performance.now(); },
                            { capture: true, once: true });
  window.__held = new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      const seat = document.getElementById(id);
      if (seat && seat.dataset.state === "held" && down !== null) {
        observer.disconnect();
        resolve(performance.now() - down);
      }
    });
    observer.observe(document.getElementById("seat-form"),
                     { subtree: true, childList: true, attributes: true });
    setTimeout(() => { observer.disconnect(); resolve(-1); }, 10000);
  });
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Command(BaseCommand):
    help = (
        "Loads a big event's seat map in Chromium N times and prints the time until the map is "
        "usable and from a click to the seat shown held, with the page's size. Uses --event or "
        "the 20,000-seat demo event (seed_demo --big), and --url or a server it starts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--event", type=int, help="Event to load (default: seed_demo --big).")
        parser.add_argument(
            "--url", help="A running server on this database (default: start one with uvicorn)."
        )
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument(
            "--chromium", default=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
        )
        parser.add_argument("--width", type=int, default=1366)
        parser.add_argument("--height", type=int, default=900)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise CommandError("mapbench needs Playwright: pip install -e '.[test]'") from exc
        if not Path(options["chromium"]).exists():
            raise CommandError(f"no Chromium at {options['chromium']} (apt-get install chromium)")
        event = self._event(options["event"])
        password = secrets.token_urlsafe(16)
        user, _ = get_user_model().objects.get_or_create(username=BENCH_USER)
        user.set_password(password)
        user.save()

        server = None
        origin = (options["url"] or "").rstrip("/")
        if not origin:
            server, origin = self._start_server()
        try:
            page_url = f"{origin}/events/{event.pk}/"
            raw, packed = self._sizes(page_url)
            seats = event.seats.count()
            self.stdout.write(
                f"{event.name} (event {event.pk}): {seats:,} seats; page {raw / 1e6:.1f} MB, "
                f"{packed / 1024:.0f} KiB gzipped; Chromium {options['width']}x{options['height']}"
            )
            self.stdout.write(
                "run  response  DOMContentLoaded  fitted  usable  click->held  seat px"
            )
            rows = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=options["chromium"],
                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
                )
                for run in range(1, options["runs"] + 1):
                    row = self._run(browser, origin, page_url, password, options)
                    rows.append(row)
                    self.stdout.write(
                        f"{run:3d}  {row['response']:6.2f} s  {row['dcl']:13.2f} s  "
                        f"{row['ready']:4.2f} s  {row['usable']:4.2f} s  "
                        f"{row['click']:8.0f} ms  {row['size']:6.0f}"
                    )
                browser.close()
            self.stdout.write(
                "median {:.2f} s  {:.2f} s  {:.2f} s  {:.2f} s  {:.0f} ms".format(
                    *(
                        statistics.median(r[key] for r in rows)
                        for key in ("response", "dcl", "ready", "usable", "click")
                    )
                )
            )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=15)

    def _event(self, event_id: int | None) -> Event:
        if event_id is not None:
            try:
                return Event.objects.get(pk=event_id)
            except Event.DoesNotExist as exc:
                raise CommandError(f"no event {event_id}") from exc
        from events.management.commands.seed_demo import BIG_EVENT_NAME

        call_command("seed_demo", "--big", stdout=io.StringIO())
        return Event.objects.filter(name=BIG_EVENT_NAME).order_by("-pk").first() or Event()

    def _start_server(self) -> tuple[subprocess.Popen[bytes], str]:
        port = _free_port()
        env = {
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": settings.SECRET_KEY
            if len(settings.SECRET_KEY) >= 50 and not settings.SECRET_KEY.startswith("django-")
            else secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "RATE_LIMIT_SEAT_ACTIONS": "off",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "booking_site.asgi:application", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(origin + "/accounts/login/", timeout=1)
                return process, origin
            except urllib.error.HTTPError:
                return process, origin
            except OSError:
                time.sleep(0.2)
        process.terminate()
        raise CommandError("the server did not start")

    def _sizes(self, url: str) -> tuple[int, int]:
        plain = urllib.request.urlopen(url, timeout=60).read()
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = answer.read()
            packed = len(body) if answer.headers.get("Content-Encoding") == "gzip" else 0
        return len(plain), packed or len(gzip.compress(plain))

    def _run(
        self, browser: Any, origin: str, url: str, password: str, options: Any
    ) -> dict[str, float]:
        context = browser.new_context(
            viewport={"width": options["width"], "height": options["height"]}
        )
        try:
            page = context.new_page()
            page.goto(f"{origin}/accounts/login/")
            page.fill("input[name=username]", BENCH_USER)
            page.fill("input[name=password]", password)
            page.click("form.stack-form button[type=submit]")
            page.wait_for_url(f"{origin}/")
            page.add_init_script(USABLE_SCRIPT)
            page.goto(url, wait_until="domcontentloaded")
            marks = page.evaluate("window.__usable")
            timing = page.evaluate(
                "(() => { const n = performance.getEntriesByType('navigation')[0];"
                " return [n.responseEnd, n.domContentLoadedEventEnd]; })()"
            )
            # Zoomed in until seats are 20 px, as a customer picking a seat would be.
            while page.evaluate(
                "parseFloat(document.getElementById('seat-form').dataset.zoom) * 26 < 20"
            ):
                page.locator(".map-controls [data-zoom=in]").click()
            page.wait_for_timeout(400)
            target = page.evaluate(CLICK_SCRIPT)
            page.evaluate(WAIT_HELD_SCRIPT, target["id"])
            page.mouse.click(target["x"], target["y"])
            click_ms = float(page.evaluate("window.__held"))
            if click_ms < 0:
                raise CommandError(f"clicking {target['id']} did not hold it within 10 s")
            page.mouse.click(target["x"], target["y"])  # release it again
            page.wait_for_function(
                "(id) => document.getElementById(id).dataset.state === 'available'",
                arg=target["id"],
            )
            return {
                "response": timing[0] / 1000,
                "dcl": timing[1] / 1000,
                "ready": (marks["ready"] or 0) / 1000,
                "usable": marks["usable"] / 1000,
                "click": click_ms,
                "size": target["size"],
            }
        finally:
            context.close()
