"""One customer: its holds and bookings through the JSON API, and what each got back."""

import asyncio
from dataclasses import dataclass, field

from .http import HttpError, Session
from .stats import ChangeLog, Outcomes, Timeline, monotonic

MAX_BUSY_RETRIES = 20


@dataclass
class Ledger:
    """Everything the customers' requests add up to: outcomes, the changes they made (for
    the viewers' latencies), the seats they were told they booked, the seats known taken."""

    holds: Outcomes = field(default_factory=Outcomes)
    bookings: Outcomes = field(default_factory=Outcomes)
    changes: ChangeLog = field(default_factory=ChangeLog)
    timeline: Timeline = field(default_factory=lambda: Timeline(monotonic()))
    booked: list[list[int]] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    server_errors: int = 0


class Customer:
    def __init__(self, number: int, session: Session, *, event_id: int, ledger: Ledger) -> None:
        self.number = number
        self.session = session
        self.event_id = event_id
        self.ledger = ledger
        self.done = False

    async def call(self, kind: str, method: str, path: str, body: dict) -> tuple[str, dict, float]:
        """Sends one hold or booking request and files its outcome. Returns (outcome, JSON
        answer, seconds to wait before retrying when busy)."""
        ledger = self.ledger
        outcomes = ledger.holds if kind == "hold" else ledger.bookings
        started = monotonic()
        try:
            response = await self.session.request(method, path, json_body=body)
        except HttpError as exc:
            outcomes.error += 1
            outcomes.error_kinds["no answer: " + str(exc).split(": ", 1)[-1][:60]] += 1
            if kind == "booking":
                ledger.timeline.booking(at=started, status="error", latency=0)
            return "error", {}, 0.2
        latency = monotonic() - started
        data = response.json()
        retry_after = 0.0
        if response.status == 201:
            outcome = "ok"
            outcomes.ok += 1
            outcomes.latencies.append(latency)
            seats = [s["id"] if isinstance(s, dict) else s for s in data.get("seats", [])]
            if kind == "hold":
                ledger.changes.made(
                    seat_ids=body.get("seats", seats), state="held", request_started=started
                )
            else:
                ledger.changes.made(seat_ids=seats, state="sold", request_started=started)
                ledger.booked.append(seats)
                ledger.taken.update(seats)
        elif response.status == 409:
            outcome = "conflict"
            outcomes.conflict += 1
        elif response.status == 503 and data.get("code") == "busy":
            outcome = "busy"
            outcomes.busy += 1
            try:
                retry_after = min(float(response.headers.get("retry-after", "0.1")), 0.5)
            except ValueError:
                retry_after = 0.1
        else:
            outcome = "error"
            outcomes.error += 1
            outcomes.error_kinds[f"{response.status} {data.get('code', '')}".strip()] += 1
            if response.status >= 500:
                ledger.server_errors += 1
        if kind == "booking":
            ledger.timeline.booking(at=started, status=outcome, latency=latency)
        return outcome, data, retry_after

    async def hold(self, seat_ids: list[int]):
        return await self.call(
            "hold", "POST", f"/api/events/{self.event_id}/holds", {"seats": seat_ids}
        )

    async def book(self, *, seat_ids: list[int] | None = None, hold_id: int | None = None):
        body = {"hold": hold_id} if hold_id is not None else {"seats": seat_ids}
        return await self.call("booking", "POST", f"/api/events/{self.event_id}/bookings", body)

    async def book_until_answered(self, **what) -> tuple[str, dict]:
        """Books, retrying while the server says it is busy (as the page tells people to)."""
        for _ in range(MAX_BUSY_RETRIES):
            outcome, data, wait = await self.book(**what)
            if outcome != "busy":
                return outcome, data
            await asyncio.sleep(wait)
        return "busy", {}

    async def hold_then_book(self, wanted: list[int]) -> str:
        """Holds the seats, then books the hold. Returns the outcome that ended the attempt."""
        outcome, data, wait = await self.hold(wanted)
        if outcome == "ok":
            self.ledger.taken.update(wanted)
            outcome, data = await self.book_until_answered(hold_id=data.get("hold"))
            return outcome
        if outcome == "conflict":
            if data.get("code") in ("limit_exceeded", "sale_not_open"):
                self.done = True
            self.ledger.taken.update(data.get("seats") or wanted)
        elif outcome == "busy":
            await asyncio.sleep(wait)
        elif outcome == "error":
            await asyncio.sleep(wait or 0.1)
        return outcome
