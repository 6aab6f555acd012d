"""One customer: its holds and bookings through the JSON API, and what each got back."""

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from .answers import Answer, answer
from .http import HttpError, Session
from .stats import ChangeLog, Outcomes, Timeline, monotonic

MAX_BUSY_RETRIES = 20

Outcome = Literal["ok", "conflict", "busy", "error"]
RequestKind = Literal["hold", "booking"]


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


@dataclass
class Attempt:
    """How one request ended: its outcome, the answer, and how long to wait if busy."""

    outcome: Outcome
    answer: Answer = field(default_factory=Answer)
    wait: float = 0.0


class Customer:
    def __init__(self, number: int, session: Session, *, event_id: int, ledger: Ledger) -> None:
        self.number = number
        self.session = session
        self.event_id = event_id
        self.ledger = ledger
        self.done = False

    async def call(self, kind: RequestKind, body: dict[str, object], seats: list[int]) -> Attempt:
        """POSTs one hold or booking and files its outcome. `seats` are the seats asked
        for (none when booking a hold)."""
        ledger = self.ledger
        outcomes = ledger.holds if kind == "hold" else ledger.bookings
        path = f"/api/events/{self.event_id}/{'holds' if kind == 'hold' else 'bookings'}"
        started = monotonic()
        try:
            response = await self.session.request("POST", path, json_body=body)
        except HttpError as exc:
            outcomes.error += 1
            outcomes.error_kinds["no answer: " + str(exc).split(": ", 1)[-1][:60]] += 1
            if kind == "booking":
                ledger.timeline.booking(at=started, status="error", latency=0)
            return Attempt("error", wait=0.2)
        latency = monotonic() - started
        data = answer(response.json())
        attempt = Attempt("error", data)
        if response.status == 201:
            attempt.outcome = "ok"
            outcomes.ok += 1
            outcomes.latencies.append(latency)
            if kind == "hold":
                ledger.changes.made(
                    seat_ids=seats or data.seats, state="held", request_started=started
                )
            else:
                ledger.changes.made(seat_ids=data.seats, state="sold", request_started=started)
                ledger.booked.append(data.seats)
                ledger.taken.update(data.seats)
        elif response.status == 409:
            attempt.outcome = "conflict"
            outcomes.conflict += 1
        elif response.status == 503 and data.code == "busy":
            attempt.outcome = "busy"
            outcomes.busy += 1
            try:
                attempt.wait = min(float(response.headers.get("retry-after", "0.1")), 0.5)
            except ValueError:
                attempt.wait = 0.1
        else:
            outcomes.error += 1
            outcomes.error_kinds[f"{response.status} {data.code}".strip()] += 1
            if response.status >= 500:
                ledger.server_errors += 1
        if kind == "booking":
            ledger.timeline.booking(at=started, status=attempt.outcome, latency=latency)
        return attempt

    async def hold(self, seat_ids: list[int]) -> Attempt:
        return await self.call("hold", {"seats": seat_ids}, seat_ids)

    async def book(
        self, *, seat_ids: list[int] | None = None, hold_id: int | None = None
    ) -> Attempt:
        if hold_id is not None:
            return await self.call("booking", {"hold": hold_id}, [])
        return await self.call("booking", {"seats": seat_ids or []}, seat_ids or [])

    async def book_until_answered(
        self, *, seat_ids: list[int] | None = None, hold_id: int | None = None
    ) -> Attempt:
        """Books, retrying while the server says it is busy (as the page tells people to)."""
        for _ in range(MAX_BUSY_RETRIES):
            attempt = await self.book(seat_ids=seat_ids, hold_id=hold_id)
            if attempt.outcome != "busy":
                return attempt
            await asyncio.sleep(attempt.wait)
        return Attempt("busy")

    async def hold_then_book(self, wanted: list[int]) -> Outcome:
        """Holds the seats, then books the hold. Returns the outcome that ended the attempt."""
        attempt = await self.hold(wanted)
        if attempt.outcome == "ok":
            self.ledger.taken.update(wanted)
            return (await self.book_until_answered(hold_id=attempt.answer.hold)).outcome
        if attempt.outcome == "conflict":
            if attempt.answer.code in ("limit_exceeded", "sale_not_open"):
                self.done = True
            self.ledger.taken.update(attempt.answer.seats or wanted)
        elif attempt.outcome == "busy":
            await asyncio.sleep(attempt.wait)
        elif attempt.outcome == "error":
            await asyncio.sleep(attempt.wait or 0.1)
        return attempt.outcome
