"""The three loads: rush (everyone after the same best seats), random, steady (a fixed rate
of single-seat bookings)."""

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from .answers import SeatInfo
from .config import Config
from .customer import Customer, Ledger
from .stats import clock


def best_seats(seats: list[SeatInfo], count: int) -> list[int]:
    """The `count` seats everyone wants: first section, front rows, middle of the row."""
    section_order: dict[str, int] = {}
    row_order: dict[tuple[str, str], int] = {}
    row_width: Counter[tuple[str, str]] = Counter()
    for seat in sorted(seats, key=lambda s: s["id"]):
        section_order.setdefault(seat["section"], len(section_order))
        row_order.setdefault((seat["section"], seat["row"]), len(row_order))
        row_width[(seat["section"], seat["row"])] = max(
            row_width[(seat["section"], seat["row"])], seat["number"]
        )

    def score(seat: SeatInfo) -> tuple[int, int, float, int]:
        key = (seat["section"], seat["row"])
        return (
            section_order[seat["section"]],
            row_order[key],
            abs(seat["number"] - (row_width[key] + 1) / 2),
            seat["id"],
        )

    available = [s for s in seats if s["state"] == "available"]
    return [s["id"] for s in sorted(available, key=score)[:count]]


# Why the load ended: --duration ran out, --bookings was reached, the seats the mode wants
# were all taken, every customer gave up (seat limit, sale closed, repeated errors), Ctrl-C.
StopCode = Literal["duration", "bookings", "sold_out", "customers_done", "interrupted"]


@dataclass(frozen=True)
class StopReason:
    code: StopCode
    text: str


class Load:
    """Drives the customers in one mode until the mode runs out of seats, the bookings
    target is reached, or it is halted; `reason` says which came first."""

    def __init__(self, config: Config, customers: list[Customer], ledger: Ledger) -> None:
        self.config = config
        self.customers = customers
        self.ledger = ledger
        self.random = random.Random(config.seed)
        self.stop = asyncio.Event()
        self.missed_ticks = 0
        self.notes: list[str] = []
        self.reason: StopReason | None = None
        self.hot_count = 0

    def end(self, code: StopCode) -> None:
        """Records why the load ends (the first reason given wins)."""
        if self.reason is None:
            self.reason = StopReason(code, self._describe(code))

    def halt(self, code: StopCode) -> None:
        """Ends the load from outside: customers finish the request in hand and stop."""
        self.end(code)
        self.stop.set()

    def _describe(self, code: StopCode) -> str:
        if code == "duration":
            return "--duration reached"
        if code == "bookings":
            return f"--bookings {self.config.bookings} reached"
        if code == "sold_out":
            if self.config.mode == "rush":
                return f"all {self.hot_count} hot seats sold"
            return "all seats sold"
        if code == "customers_done":
            return "every customer stopped (seat limit, sale closed or repeated errors)"
        return "interrupted"

    def enough(self) -> bool:
        target = self.config.bookings
        if target is not None and self.ledger.bookings.ok >= target:
            self.end("bookings")
            return True
        return self.stop.is_set()

    def pick_free(self, pool: list[int], count: int) -> list[int]:
        """Up to `count` random seats from `pool` not known to be taken (pool is pruned)."""
        chosen: list[int] = []
        while pool and len(chosen) < count:
            index = self.random.randrange(len(pool))
            seat = pool[index]
            pool[index] = pool[-1]
            pool.pop()
            if seat not in self.ledger.taken:
                chosen.append(seat)
        return chosen

    async def rush(self, hot: list[int], start: asyncio.Event) -> None:
        taken = self.ledger.taken
        self.hot_count = len(hot)

        async def customer_loop(customer: Customer) -> None:
            await start.wait()
            errors = 0
            while not self.enough() and not customer.done:
                wanted_from = [s for s in hot if s not in taken]
                if not wanted_from:
                    self.end("sold_out")
                    return
                wanted = self.random.sample(wanted_from, min(self.config.group, len(wanted_from)))
                outcome = await customer.hold_then_book(wanted)
                errors = errors + 1 if outcome == "error" else 0
                if errors >= 20:
                    return

        loops = [asyncio.create_task(customer_loop(c)) for c in self.customers]
        start.set()
        await asyncio.gather(*loops)

    async def random_load(self, pool: list[int]) -> None:
        async def customer_loop(customer: Customer) -> None:
            errors = 0
            while not self.enough() and not customer.done:
                wanted = self.pick_free(pool, self.random.randint(1, self.config.group))
                if not wanted:
                    self.end("sold_out")
                    return
                if self.random.random() < 0.5:
                    outcome = await customer.hold_then_book(wanted)
                else:
                    attempt = await customer.book_until_answered(seat_ids=wanted)
                    outcome = attempt.outcome
                    if outcome == "conflict":
                        self.ledger.taken.update(attempt.answer.seats or wanted)
                        customer.done = attempt.answer.code in ("limit_exceeded", "sale_not_open")
                errors = errors + 1 if outcome == "error" else 0
                if errors >= 20:
                    return

        await asyncio.gather(*(customer_loop(c) for c in self.customers))

    async def steady(self, pool: list[int]) -> None:
        """One single-seat booking every 1/rate seconds, each by an idle customer; a tick
        with every customer still waiting for an answer is counted as missed."""
        idle: asyncio.Queue[Customer] = asyncio.Queue()
        for customer in self.customers:
            idle.put_nowait(customer)
        in_flight: set[asyncio.Task[None]] = set()

        async def change(customer: Customer, seat: int) -> None:
            try:
                attempt = await customer.book_until_answered(seat_ids=[seat])
                if attempt.outcome == "conflict":
                    self.ledger.taken.update(attempt.answer.seats or [seat])
            finally:
                idle.put_nowait(customer)

        interval = 1.0 / self.config.rate
        start = clock()
        tick = 0
        while not self.enough():
            try:
                customer = idle.get_nowait()
            except asyncio.QueueEmpty:
                self.missed_ticks += 1
            else:
                seats = self.pick_free(pool, 1)
                if not seats:
                    idle.put_nowait(customer)
                    self.end("sold_out")
                    break
                self.ledger.taken.add(seats[0])
                task = asyncio.create_task(change(customer, seats[0]))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * interval - clock()))
        if in_flight:
            await asyncio.gather(*in_flight)

    async def drive(self, hot: list[int], all_seats: list[int]) -> None:
        mode = self.config.mode
        if mode == "rush":
            await self.rush(hot, asyncio.Event())
        elif mode == "random":
            await self.random_load(list(all_seats))
        else:
            await self.steady(list(all_seats))
        self.enough()  # the last answers may have reached --bookings
        self.end("customers_done")
