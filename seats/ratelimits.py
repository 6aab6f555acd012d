"""Rate limits that no person reaches and every bot does, shared by all web processes.

Each limit is one or more rates ("30 per 10 s and 120 per minute", settings RATE_LIMIT_*,
parsed by `booking_site.settings.env_rates`), counted in fixed windows in the Django cache
(Redis in production, so every process counts together): a window's counter is created with
`cache.add` and bumped with `cache.incr`, both atomic. A request over any of its rates is
refused with 429 and a Retry-After of the seconds until that window ends; the refusal
changes nothing. Refused requests count too: hammering on after a 429 only uses up the
longer windows' allowance sooner. A request is counted before it runs, never after, so
concurrent requests cannot all slip in under the limit; one that turns out not to count (a
sign-up form sent back with mistakes) is given back (`give_back`).

If the cache cannot be reached the request is let through (fail open) and a warning is
logged: the limits protect the site from floods, they are not what keeps seats safe.
"""

import ipaddress
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape

from . import loop_io
from .errors import BookingError

logger = logging.getLogger(__name__)

# A window's counter outlives its window by this long, so processes whose clocks differ a
# little never bump a counter that has already expired (Django's Redis `incr` would then
# create one that never expires).
_KEY_GRACE_SECONDS = 60
# At most one "cache unreachable" warning per process this often, not one per request.
_WARN_EVERY_SECONDS = 60.0
_last_warning = -math.inf
# After the cache failed, requests skip it (let through) for this long instead of each
# waiting out the cache's socket time-out on a Redis that stopped answering.
_SKIP_CACHE_AFTER_FAILURE_SECONDS = 5.0
_cache_failed_at = -math.inf


@dataclass(frozen=True)
class Decision:
    """Whether a request may go ahead; if not, how many seconds until it may. `counted`
    names the window counters the request was counted in (for `give_back`)."""

    allowed: bool
    retry_after: int = 0
    counted: tuple[str, ...] = field(default=(), compare=False)


ALLOWED = Decision(allowed=True)


class RateLimited(BookingError):
    """The client sent more requests than the limit allows; nothing was done."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many requests: please wait {wait_text(retry_after)} and try again.")
        self.retry_after = retry_after


def enforce(decision: Decision) -> None:
    """Raises RateLimited if the decision refuses the request."""
    if not decision.allowed:
        raise RateLimited(decision.retry_after)


def clock() -> float:
    """Seconds since the epoch: every process must agree on window boundaries (NTP)."""
    return time.time()


def wait_text(seconds: int) -> str:
    """How long to wait, in words: "1 second", "40 seconds", "3 minutes" (rounded up)."""
    if seconds < 120:
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    return f"{math.ceil(seconds / 60)} minutes"


@dataclass(frozen=True)
class Window:
    """The current window of one (limit, seconds) rate: its counter's cache key, when it
    ends, and how long the counter lives."""

    key: str
    limit: int
    ends: float
    timeout: int


def windows(scope: str, ident: str, rates: Sequence[tuple[int, int]], at: float) -> list[Window]:
    """The windows of `ident` under each rate of `scope` at time `at`."""
    found = []
    for limit, seconds in rates:
        window = int(at // seconds)
        ends = (window + 1) * seconds
        found.append(
            Window(
                key=f"ratelimit:{scope}:{ident}:{seconds}:{window}",
                limit=limit,
                ends=ends,
                timeout=math.ceil(ends - at) + _KEY_GRACE_SECONDS,
            )
        )
    return found


def decide(counted: Sequence[tuple[Window, int]], at: float) -> Decision:
    """Whether a request counted as `counted` (each window with its count, this request
    included) is within all of them, or the longest wait if not."""
    retry_after = 0
    for window, count in counted:
        if count > window.limit:
            retry_after = max(retry_after, max(1, math.ceil(window.ends - at)))
    return Decision(
        allowed=not retry_after,
        retry_after=retry_after,
        counted=tuple(window.key for window, _ in counted),
    )


def cache_skipped() -> bool:
    """Whether the cache failed a moment ago: requests are let through uncounted."""
    return time.monotonic() - _cache_failed_at < _SKIP_CACHE_AFTER_FAILURE_SECONDS


def cache_failed(scope: str, exc: Exception) -> None:
    """Lets requests through uncounted for a while, warning once, after the cache failed."""
    global _cache_failed_at
    _cache_failed_at = time.monotonic()
    _warn_unreachable(scope, exc)


def hit(
    scope: str, ident: str, rates: Sequence[tuple[int, int]], *, now: float | None = None
) -> Decision:
    """Counts one request of `ident` (a customer, an address) against each (limit, seconds)
    rate of `scope`. Returns whether it is within all of them, or the longest wait if not."""
    if cache_skipped():
        return ALLOWED
    at = clock() if now is None else now
    cache = caches["default"]
    counted = []
    for window in windows(scope, ident, rates, at):
        try:
            count = _bump(cache, window.key, timeout=window.timeout)
        except Exception as exc:  # whatever the backend raises while it is down
            cache_failed(scope, exc)
            return ALLOWED
        counted.append((window, count))
    return decide(counted, at)


async def ahit(
    scope: str, ident: str, rates: Sequence[tuple[int, int]], *, now: float | None = None
) -> Decision:
    """`hit` on the event loop (seats.loop_io's Redis client, the default cache's
    keys): every window counted in one round trip, each counter made with its expiry if
    it is new, as `cache.add` and `cache.incr` do."""
    if cache_skipped() or not rates:
        return ALLOWED
    at = clock() if now is None else now
    client = loop_io.cache()
    current = windows(scope, ident, rates, at)
    try:
        async with client.redis.pipeline(transaction=False) as pipe:
            for window in current:
                key = client.key(window.key)
                pipe.set(key, 0, ex=window.timeout, nx=True)
                pipe.incr(key)
            replies = await pipe.execute()
    except Exception as exc:  # whatever the backend raises while it is down
        cache_failed(scope, exc)
        return ALLOWED
    counts = [int(count) for count in replies[1::2]]
    return decide(list(zip(current, counts, strict=True)), at)


# DECR only a counter that still exists: one whose window ended is left gone, as Django's
# cache.decr refuses a missing key (a new counter at -1 would never expire).
_DECR_IF_EXISTS = (
    "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0"
)


async def agive_back(decision: Decision) -> None:
    """`give_back` on the event loop."""
    if not decision.counted:
        return
    client = loop_io.cache()
    try:
        async with client.redis.pipeline(transaction=False) as pipe:
            for key in decision.counted:
                pipe.eval(_DECR_IF_EXISTS, 1, client.key(key))
            await pipe.execute()
    except Exception as exc:  # whatever the backend raises while it is down
        cache_failed("give back", exc)


def give_back(decision: Decision) -> None:
    """Takes the request that `decision` counted off its counters again, for a request that
    turned out not to count. Counters already gone (their window over) are left alone."""
    cache = caches["default"]
    for key in decision.counted:
        try:
            cache.decr(key)
        except ValueError:  # the counter expired: its window is over anyway
            pass
        except Exception as exc:  # whatever the backend raises while it is down
            cache_failed("give back", exc)
            return


def _bump(cache: BaseCache, key: str, *, timeout: int) -> int:
    """Adds one to the window's counter and returns it (both steps are atomic in Redis)."""
    if cache.add(key, 1, timeout):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr: this is a new window's first
        cache.add(key, 1, timeout)
        return 1


def _warn_unreachable(scope: str, exc: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        logger.warning(
            "Rate limits are off while the cache is unreachable (%s: %s: %s)",
            scope,
            type(exc).__name__,
            exc,
        )


def client_address(request: HttpRequest) -> str:
    """Who to count per address: REMOTE_ADDR, which uvicorn sets from the trusted proxy's
    X-Forwarded-For (--proxy-headers --forwarded-allow-ips). An IPv6 client counts by its
    /64, the block one customer's line gets, so rotating through it does not help a bot."""
    raw = str(request.META.get("REMOTE_ADDR") or "")
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# --- the limits -----------------------------------------------------------------------


def seat_action(*, customer_id: int, event_id: int) -> Decision:
    """A hold, release or seat click by the customer on the event's map."""
    return hit("seats", f"{customer_id}:{event_id}", settings.RATE_LIMIT_SEAT_ACTIONS)


def booking(*, customer_id: int) -> Decision:
    """A booking attempt by the customer, for any event."""
    return hit("bookings", str(customer_id), settings.RATE_LIMIT_BOOKINGS)


async def abooking(*, customer_id: int) -> Decision:
    """`booking` on the event loop."""
    return await ahit("bookings", str(customer_id), settings.RATE_LIMIT_BOOKINGS)


def login_attempt(request: HttpRequest) -> Decision:
    """A login form post from the request's address."""
    return hit("login", client_address(request), settings.RATE_LIMIT_LOGIN)


def signup_attempt(request: HttpRequest) -> Decision:
    """A sign-up form post from the request's address, counted as an account created (at
    once, so concurrent posts cannot all get in under the limit). Give it back
    (`give_back`) if no account is created: a form sent back with mistakes does not use up
    a person's allowance."""
    return hit("signup", client_address(request), settings.RATE_LIMIT_SIGNUP)


# --- answers --------------------------------------------------------------------------


def too_many_requests_page(decision: Decision, *, back: str = "") -> HttpResponse:
    """A plain 429 page with Retry-After: cheap to send, however often a bot asks."""
    message = RateLimited(decision.retry_after).message
    link = f'<p><a href="{escape(back)}">Back</a></p>' if back else ""
    response = HttpResponse(
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>Too many requests</title>'
        f'<p role="alert">{escape(message)}</p>{link}</html>',
        status=429,
    )
    response["Retry-After"] = str(decision.retry_after)
    return response
