"""The event loop's own connections: a psycopg async pool on the default database and an
async Redis client on the default cache, one of each per running loop, made on first use.

They serve the requests answered on the loop itself (booking_site.loop_bookings), which must never
block it: Django's connections and cache clients do. They are configured from the same
settings (DATABASES["default"], CACHES["default"]), so they reach the same database with the
same options (statement_timeout) and read the cache keys Django writes.
"""

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

import psycopg_pool
import redis.asyncio
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisSerializer
from django.db import connections

# Redis connections of one loop's cache client.
CACHE_CONNECTIONS = 32


@dataclass
class CacheClient:
    """An async client on the default cache's Redis, with the cache's key names and value
    encoding (django.core.cache.backends.redis)."""

    redis: redis.asyncio.Redis
    cache: BaseCache
    serializer: RedisSerializer

    def key(self, key: str) -> str:
        """The Redis key Django's cache stores `key` under."""
        return self.cache.make_key(key)

    def loads(self, raw: bytes | str | None) -> Any:
        """A value as Django's cache would return it; None for a missing key."""
        if raw is None:
            return None
        return self.serializer.loads(raw.encode() if isinstance(raw, str) else raw)


@dataclass
class _LoopConnections:
    database: psycopg_pool.AsyncConnectionPool | None = None
    cache: CacheClient | None = None


_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections]" = (
    weakref.WeakKeyDictionary()
)


def _connections() -> _LoopConnections:
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = _LoopConnections()
    return found


def _connect_kwargs() -> dict[str, Any]:
    """psycopg's connection arguments for the default database, as Django's own
    connections get them, less what belongs to Django's sync cursors and adapters."""
    params = dict(connections["default"].get_connection_params())
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    params["autocommit"] = True
    # Each connection prepares the booking statement on first use (PostgreSQL parses and
    # plans it once); Django's own connections never prepare (its default, for poolers).
    params["prepare_threshold"] = 0 if settings.DB_LOOP_PREPARED_STATEMENTS else None
    return params


async def database() -> psycopg_pool.AsyncConnectionPool:
    """The running loop's pool on the default database (PostgreSQL), opened on first use.

    Its connections are not checked when handed out (Django's pool checks each, a round
    trip): one that a database restart dropped fails its statement, which answers 503
    "busy, try again" like any lost connection, and the pool replaces it."""
    found = _connections()
    if found.database is None:
        pool = psycopg_pool.AsyncConnectionPool(
            kwargs=_connect_kwargs(),
            # All opened at once: a rush's first bookings do not each wait for a new one.
            min_size=settings.DB_LOOP_POOL_SIZE,
            max_size=settings.DB_LOOP_POOL_SIZE,
            timeout=settings.DATABASES["default"]["OPTIONS"]["pool"]["timeout"],
            open=False,
        )
        found.database = pool
        await pool.open()
    return found.database


def cache() -> CacheClient:
    """The running loop's async client on the default cache (Django's RedisCache)."""
    found = _connections()
    if found.cache is None:
        config = settings.CACHES["default"]
        options = config.get("OPTIONS", {})
        default = caches.create_connection("default")
        # A bounded pool: a burst of bookings queues for a connection (each is held for one
        # round trip) instead of opening one per request up to Redis's maxclients.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            config["LOCATION"],
            max_connections=CACHE_CONNECTIONS,
            timeout=options.get("socket_timeout"),
            socket_connect_timeout=options.get("socket_connect_timeout"),
            socket_timeout=options.get("socket_timeout"),
        )
        found.cache = CacheClient(
            redis=redis.asyncio.Redis(connection_pool=pool),
            cache=default,
            serializer=RedisSerializer(),
        )
    return found.cache


async def close() -> None:
    """Closes the running loop's connections (its server shutting down)."""
    found = _by_loop.pop(asyncio.get_running_loop(), None)
    if found is None:
        return
    if found.database is not None:
        await found.database.close()
    if found.cache is not None:
        await found.cache.redis.aclose()
        await found.cache.redis.connection_pool.disconnect()
