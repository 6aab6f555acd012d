"""Sessions kept in the database and copied into the cache, so that a signed-in request
reads its session without a database query (SESSION_ENGINE = "booking_site.sessions").

Like Django's `cached_db`, writes go to the database and then the cache, reads try the cache
first. Unlike it, a cache that is down or stuck never fails a request: sessions are read
and written in the database alone until the cache answers again (`copies`, shared with the
user cache of booking_site.auth_cache), and the outage is logged once, not per request.

A stale copy never brings a dead session back:
- Signing out, `flush` and `cycle_key` replace the copy with a tombstone before the row is
  deleted, and copies are filled from the database with `add`, so a request that read the
  row just before it went cannot put it back.
- A copy the cache missed during an outage (a tombstone or save that could not be written)
  cannot be trusted afterwards. Every copy is stamped with the cache's generation, and a
  process that saw the cache fail starts a new generation before it uses the cache again,
  which retires every older copy at once: each active session is read from the database
  once more.
- A process that saw the outage but died before the cache came back starts no new
  generation; other processes could then serve a stale copy until it expires, so copies
  live at most COPY_SECONDS.
"""

import logging
import math
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.core.cache import caches
from django.utils import timezone

from seats import loop_io

logger = logging.getLogger(__name__)

# How long a session's copy lives in the cache (less if the session expires sooner).
COPY_SECONDS = 300
# What a signed-out session's copy is replaced with.
DEAD = "dead"


@dataclass(frozen=True)
class Lookup:
    """What the cache holds under a key: `value` if its copy is of the current generation
    (else None), and what a fill from the database needs to know."""

    value: Any = None
    # The generation to stamp a fill with; None while the cache is not to be used.
    generation: str | None = None
    # Something is stored under the key (a copy of an older generation, say), which a fill
    # must overwrite instead of adding to an empty key.
    present: bool = False

    @property
    def found(self) -> bool:
        return self.value is not None


UNAVAILABLE = Lookup()


class WouldBlock(Exception):
    """Raised on the event loop (`CacheCopies.prefetched`) where a copy would be read or
    written with a blocking call: the request is for a thread to serve."""


# The copies read ahead for code running on the event loop, by key; None in threads.
_prefetched: ContextVar[dict[str, Lookup] | None] = ContextVar("prefetched", default=None)


class CacheCopies:
    """Copies of database rows in the default cache, each stamped with the generation it
    was written in. Any cache fault makes the process leave the cache alone for
    RETRY_SECONDS and then start a new generation before it uses the cache again.

    Every method answers even when the cache does not: a read that cannot be served is a
    miss, a write that cannot be made is dropped."""

    GENERATION_KEY = "copies:generation"
    # After a fault, requests skip the cache for this long instead of each waiting out the
    # cache's socket time-out on a Redis that stopped answering.
    RETRY_SECONDS = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probe = threading.Lock()
        self._outage = False
        self._failed_at = -math.inf

    def get(self, key: str) -> Lookup:
        return self.get_many([key])[0]

    def get_many(self, keys: list[str]) -> list[Lookup]:
        """What the cache holds under each key, in one read.

        Raises WouldBlock inside `prefetched` for a key it was not given."""
        prefetched = _prefetched.get()
        if prefetched is not None:
            if not all(key in prefetched for key in keys):
                raise WouldBlock(f"not read ahead: {keys}")
            return [prefetched[key] for key in keys]
        if not self._usable():
            return [UNAVAILABLE for _ in keys]
        try:
            found = caches["default"].get_many([self.GENERATION_KEY, *keys])
            generation = found.get(self.GENERATION_KEY) or self._start_generation()
        except Exception as exc:  # whatever the backend raises while it is down
            self._failed(exc)
            return [UNAVAILABLE for _ in keys]
        return [self._lookup(found.get(key), generation) for key in keys]

    async def aget_many(self, keys: list[str]) -> dict[str, Lookup] | None:
        """`get_many` on the event loop, in one read; None where only a thread can answer
        (the cache is failing or has no generation yet: the thread path handles that)."""
        if self._outage:
            return None
        client = loop_io.cache()
        try:
            raw = await client.redis.mget([client.key(k) for k in [self.GENERATION_KEY, *keys]])
        except Exception as exc:  # whatever the backend raises while it is down
            self._failed(exc)
            return None
        generation = client.loads(raw[0])
        if not generation:
            return None
        return {
            key: self._lookup(client.loads(entry), str(generation))
            for key, entry in zip(keys, raw[1:], strict=True)
        }

    @staticmethod
    @contextmanager
    def prefetched(lookups: dict[str, Lookup]) -> Iterator[None]:
        """Inside, the copies are read from `lookups` (read ahead on the event loop by
        `aget_many`), and reading any other key or writing any raises WouldBlock."""
        token = _prefetched.set(lookups)
        try:
            yield
        finally:
            _prefetched.reset(token)

    @staticmethod
    def _lookup(entry: Any, generation: str) -> Lookup:
        if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == generation:
            return Lookup(value=entry[1], generation=generation, present=True)
        return Lookup(generation=generation, present=entry is not None)

    def fill(self, key: str, value: Any, timeout: int, lookup: Lookup) -> None:
        """Copies a row just read from the database after `lookup` found no copy to use.
        An empty key is only filled if it still is, so a copy or tombstone another request
        wrote meanwhile stays."""
        _refuse_on_loop()
        if lookup.generation is None or timeout <= 0 or not self._usable():
            return
        cache = caches["default"]
        entry = (lookup.generation, value)
        try:
            if lookup.present:
                cache.set(key, entry, timeout)
            else:
                cache.add(key, entry, timeout)
        except Exception as exc:
            self._failed(exc)

    def set(self, key: str, value: Any, timeout: int) -> None:
        _refuse_on_loop()
        if timeout <= 0 or not self._usable():
            return
        cache = caches["default"]
        try:
            generation = cache.get(self.GENERATION_KEY) or self._start_generation()
            cache.set(key, (generation, value), timeout)
        except Exception as exc:
            self._failed(exc)

    def delete(self, key: str) -> None:
        _refuse_on_loop()
        if not self._usable():
            return
        try:
            caches["default"].delete(key)
        except Exception as exc:
            self._failed(exc)

    def reset(self) -> None:
        """Forgets any outage (tests: each starts with a cache that has not failed)."""
        with self._lock:
            self._outage = False
            self._failed_at = -math.inf

    def _start_generation(self) -> str:
        """The generation, made now if the cache has none (it was emptied or restarted)."""
        cache = caches["default"]
        cache.add(self.GENERATION_KEY, secrets.token_hex(8), None)
        generation = cache.get(self.GENERATION_KEY)
        if not generation:
            raise RuntimeError("the cache dropped the copies' generation as soon as it was set")
        return str(generation)

    def _usable(self) -> bool:
        if not self._outage:
            return True
        if time.monotonic() - self._failed_at < self.RETRY_SECONDS:
            return False
        # One request finds out whether the cache is back; the others keep to the database.
        if not self._probe.acquire(blocking=False):
            return False
        try:
            # Copies written before or during the outage may be stale: retire them all.
            caches["default"].set(self.GENERATION_KEY, secrets.token_hex(8), None)
        except Exception as exc:
            self._failed(exc)
            return False
        finally:
            self._probe.release()
        with self._lock:
            self._outage = False
        logger.info("The cache answers again: sessions and users are read from it again")
        return True

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            first = not self._outage
            self._outage = True
            self._failed_at = time.monotonic()
        if first:
            logger.warning(
                "The cache is unreachable (%s: %s): sessions and users are read from the "
                "database until it answers",
                type(exc).__name__,
                exc,
            )


def _refuse_on_loop() -> None:
    if _prefetched.get() is not None:
        raise WouldBlock("a copy would be written")


copies = CacheCopies()


def user_copy_key(user_id: Any) -> str:
    """Where the copy of a user's row lives (booking_site.auth_cache)."""
    return f"user:{user_id}"


# The user each session key was last seen signed in as. A key never changes hands (signing
# in gives the session a new key), so loading a session reads its user's copy in the same
# round trip (`read_ahead`); a hint that is wrong or gone only costs that read one more key.
_session_users: dict[str, str] = {}
SESSION_USERS_KEPT = 50_000
# The user copy the request's session load read ahead: (its key, what the cache held).
_read_ahead: ContextVar[tuple[str, Lookup] | None] = ContextVar("read_ahead", default=None)


def read_ahead(key: str) -> Lookup | None:
    """What the cache held under this user copy key when the session was loaded, if the
    load read it; taken once (each request runs in a context of its own, and each session
    load replaces it)."""
    ahead = _read_ahead.get()
    if ahead is None or ahead[0] != key:
        return None
    _read_ahead.set(None)
    return ahead[1]


def session_copy_keys(session_key: str) -> list[str]:
    """What loading the session reads from the cache: its copy's key, and its user's copy's
    if this process has seen the session signed in (`read_ahead`)."""
    user_id = _session_users.get(session_key)
    key = SessionStore.cache_key_prefix + session_key
    return [key] if user_id is None else [key, user_copy_key(user_id)]


async def aread_ahead(session_key: str) -> dict[str, Lookup] | None:
    """On the event loop: the cache copies that loading this session and its user reads,
    for `CacheCopies.prefetched`. One read, or two for a session this process has not seen
    signed in yet (its user is known once its copy is read). None where only a thread can
    answer (see `CacheCopies.aget_many`)."""
    keys = session_copy_keys(session_key)
    lookups = await copies.aget_many(keys)
    if lookups is None or len(keys) > 1:
        return lookups
    session = lookups[keys[0]]
    if not (session.found and isinstance(session.value, dict) and SESSION_KEY in session.value):
        return lookups
    user_key = user_copy_key(session.value[SESSION_KEY])
    users = await copies.aget_many([user_key])
    return None if users is None else {**lookups, **users}


def _remember_user(session_key: str, data: dict[str, Any]) -> None:
    user_id = data.get(SESSION_KEY)
    if user_id is None or _session_users.get(session_key) == user_id:
        return
    if len(_session_users) >= SESSION_USERS_KEPT:
        _session_users.clear()  # a process's hints, not its memory, are what may be lost
    _session_users[session_key] = user_id


def _copy_seconds(expiry_age: int) -> int:
    return min(COPY_SECONDS, expiry_age)


class SessionStore(DBStore):
    """Django's database sessions, read from their cache copies when they can be."""

    cache_key_prefix = "session:"

    def _copy_key(self, session_key: str) -> str:
        return self.cache_key_prefix + session_key

    def load(self) -> dict[str, Any]:
        _read_ahead.set(None)
        if self.session_key is None:
            return {}
        keys = session_copy_keys(self.session_key)
        found = copies.get_many(keys)
        lookup = found[0]
        if len(keys) > 1:
            _read_ahead.set((keys[1], found[1]))
        if lookup.value == DEAD:
            self._session_key = None  # as for a row that is gone: a new key on save
            return {}
        if lookup.found:
            data: dict[str, Any] = lookup.value
            _remember_user(self.session_key, data)
            return data
        row = self.model.objects.filter(
            session_key=self.session_key, expire_date__gt=timezone.now()
        ).first()
        if row is None:
            self._session_key = None
            return {}
        data = self.decode(row.session_data)
        _remember_user(self.session_key, data)
        copies.fill(
            keys[0], data, _copy_seconds(self.get_expiry_age(expiry=row.expire_date)), lookup
        )
        return data

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            # create() comes back here with a key, which saves the copy (once).
            return self.create()
        super().save(must_create)
        copies.set(
            self._copy_key(self.session_key),
            dict(self.items()),
            _copy_seconds(self.get_expiry_age()),
        )

    def delete(self, session_key: str | None = None) -> None:
        session_key = session_key or self.session_key
        if session_key is None:
            return
        key = self._copy_key(session_key)
        # The tombstone goes first, so no request can copy the row back in while it is
        # deleted; and again after, over a save that raced the deletion.
        copies.set(key, DEAD, COPY_SECONDS)
        super().delete(session_key)
        copies.set(key, DEAD, COPY_SECONDS)

    # Django's async session API (async views, `alogout`) takes the same paths as the
    # sync one, so its writes reach the cache copies too.
    async def aload(self) -> dict[str, Any]:
        return await sync_to_async(self.load)()

    async def asave(self, must_create: bool = False) -> None:
        await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)
