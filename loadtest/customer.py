"""One customer: its holds and bookings through the JSON API, and what each got back."""

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .answers import Answer, answer
from .http import HttpError, Response, Session, next_url
from .stats import ChangeLog, Outcomes, Timeline, clock

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
    timeline: Timeline = field(default_factory=lambda: Timeline(clock()))
    booked: list[list[int]] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    server_errors: int = 0


@dataclass
class Attempt:
    """How one request ended: its outcome, the answer, and how long to wait if busy."""

    outcome: Outcome
    answer: Answer = field(default_factory=Answer)
    wait: float = 0.0


def _outcome(status: int, code: str) -> Outcome:
    if status == 201:
        return "ok"
    if status == 409:
        return "conflict"
    if status == 503 and code == "busy":
        return "busy"
    return "error"


def _retry_after(response: Response) -> float:
    """The server's Retry-After, at most half a second (a crowd does not wait politely)."""
    try:
        return min(float(response.headers.get("retry-after", "0.1")), 0.5)
    except ValueError:
        return 0.1


class Customer:
    """One customer's session. `urls` are the site's servers: a request that gets no answer
    is retried through the next one (as a proxy would send it to a live process), and the
    customer stays there."""

    def __init__(
        self,
        number: int,
        session: Session,
        *,
        event_id: int,
        ledger: Ledger,
        urls: Sequence[str] = (),
    ) -> None:
        self.number = number
        self.session = session
        self.event_id = event_id
        self.ledger = ledger
        self.urls = list(urls) or [session.base_url]
        self.done = False

    async def call(
        self, kind: RequestKind, body: dict[str, object], seats: list[int], *, key: str = ""
    ) -> Attempt:
        """POSTs one hold or booking and files its outcome. `seats` are the seats asked
        for (none when booking a hold).

        The request carries `key` as its Idempotency-Key (default: a fresh one). When it
        gets no answer (connection refused, dropped, timed out) or a 503, it is sent once
        more with the same key, as a browser's retry would be (after no answer, through the
        next server): the server may already have acted on the first, and the key lets it
        answer the same again. It counts as one request, by its last answer."""
        ledger = self.ledger
        outcomes = ledger.holds if kind == "hold" else ledger.bookings
        path = f"/api/events/{self.event_id}/{'holds' if kind == 'hold' else 'bookings'}"
        headers = {"Idempotency-Key": key or secrets.token_urlsafe(18)}
        started = clock()
        retried = False
        while True:
            cut_off = False
            try:
                response: Response | None = await self.session.request(
                    "POST", path, json_body=body, headers=headers
                )
                failure = ""
            except HttpError as exc:
                response, failure = None, str(exc).split(": ", 1)[-1][:60]
                cut_off = exc.sent
            if response is not None and response.status >= 500:
                self._count_server_error(outcomes, response)
            if retried or not (response is None or response.status == 503):
                break
            retried = True
            if response is None:
                outcomes.retries_after_no_answer += 1
                outcomes.retries_after_cut_off += cut_off
                await self.session.move_to(next_url(self.urls, self.session.base_url))
            else:
                outcomes.retries_after_503 += 1
                await asyncio.sleep(_retry_after(response))
        latency = clock() - started
        attempt = self._file(kind, outcomes, response, failure, started, latency, seats)
        if retried:
            outcomes.retried_outcomes[attempt.outcome] += 1
        return attempt

    def _file(
        self,
        kind: RequestKind,
        outcomes: Outcomes,
        response: Response | None,
        failure: str,
        started: float,
        latency: float,
        seats: list[int],
    ) -> Attempt:
        """Counts the request's last answer (None: no answer) as its outcome."""
        ledger = self.ledger
        if response is None:
            attempt = Attempt("error", wait=0.2)
            outcomes.error_kinds["no answer: " + failure] += 1
        else:
            data = answer(response.json())
            attempt = Attempt(_outcome(response.status, data.code), data)
        if attempt.outcome == "ok":
            outcomes.ok += 1
            outcomes.latencies.append(latency)
            if kind == "hold":
                ledger.changes.made(
                    seat_ids=seats or attempt.answer.seats, state="held", request_started=started
                )
            else:
                booked = attempt.answer.seats
                ledger.changes.made(seat_ids=booked, state="sold", request_started=started)
                ledger.booked.append(booked)
                ledger.taken.update(booked)
        elif attempt.outcome == "conflict":
            outcomes.conflict += 1
        elif attempt.outcome == "busy":
            outcomes.busy += 1
            attempt.wait = _retry_after(response) if response is not None else 0.1
        else:
            outcomes.error += 1
            if response is not None:
                outcomes.error_kinds[f"{response.status} {attempt.answer.code}".strip()] += 1
        if kind == "booking":
            ledger.timeline.booking(at=started, status=attempt.outcome, latency=latency)
        return attempt

    def _count_server_error(self, outcomes: Outcomes, response: Response) -> None:
        """Every 5xx but "busy, try again" is the server failing, retried or not."""
        if _outcome(response.status, answer(response.json()).code) != "busy":
            self.ledger.server_errors += 1

    async def hold(self, seat_ids: list[int]) -> Attempt:
        return await self.call("hold", {"seats": seat_ids}, seat_ids)

    async def book(
        self, *, seat_ids: list[int] | None = None, hold_id: int | None = None, key: str = ""
    ) -> Attempt:
        if hold_id is not None:
            return await self.call("booking", {"hold": hold_id}, [], key=key)
        return await self.call("booking", {"seats": seat_ids or []}, seat_ids or [], key=key)

    async def book_until_answered(
        self, *, seat_ids: list[int] | None = None, hold_id: int | None = None
    ) -> Attempt:
        """Books, retrying while the server says it is busy (as the page tells people to),
        every time with the same Idempotency-Key: one of the tries may have gone through
        unanswered, and only its key gets its answer back instead of a conflict with itself."""
        key = secrets.token_urlsafe(18)
        for _ in range(MAX_BUSY_RETRIES):
            attempt = await self.book(seat_ids=seat_ids, hold_id=hold_id, key=key)
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
