"""Settings, all from the environment (see .env.example).

With nothing set, the site runs on a SQLite file and the in-memory channel layer: one
process. With DATABASE_URL (PostgreSQL) and REDIS_URL it runs as many processes as needed.
With DEBUG off it refuses to start without a strong SECRET_KEY. The test suite runs on
tests/settings.py, which imports this module.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

# Generic Django classes (admin.ModelAdmin[Event], QuerySet[Seat]) subscriptable at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


# An empty variable (`NAME=` in an env file) means "use the default", as if it were unset.
def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    return value.lower() in {"1", "true", "yes", "on"} if value else default


def env_int(name: str, default: int) -> int:
    return int(env_str(name) or default)


def env_float(name: str, default: float) -> float:
    return float(env_str(name) or default)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def production_secret_key(key: str) -> str:
    """Returns the key if it is fit to sign sessions in production.

    Raises ImproperlyConfigured if it is missing or weak by Django's own rule (check W009):
    shorter than 50 characters, fewer than 5 distinct ones, or Django's insecure prefix.
    """
    advice = 'Generate one: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
    if not key:
        raise ImproperlyConfigured(f"SECRET_KEY must be set when DEBUG is off. {advice}")
    if (
        len(key) < SECRET_KEY_MIN_LENGTH
        or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or key.startswith(SECRET_KEY_INSECURE_PREFIX)
    ):
        raise ImproperlyConfigured(
            f"SECRET_KEY is too weak to run with DEBUG off: it needs at least "
            f"{SECRET_KEY_MIN_LENGTH} characters, at least {SECRET_KEY_MIN_UNIQUE_CHARACTERS} "
            f"different ones, and must not start with {SECRET_KEY_INSECURE_PREFIX!r}. {advice}"
        )
    return key


DEBUG = env_bool("DEBUG", False)
if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY", SECRET_KEY_INSECURE_PREFIX + "development-only-key")
else:
    SECRET_KEY = production_secret_key(env_str("SECRET_KEY"))

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- HTTPS ----------------------------------------------------------------------------
# All off by default, so a plain-HTTP development or test server works; .env.example turns
# them on for production (`manage.py check --deploy` is clean with it).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# The header a TLS-terminating proxy sets to "https", e.g. X-Forwarded-Proto. Only for a
# proxy that always sets or strips it (else clients could claim HTTPS). Not needed under
# the Procfile's uvicorn: --proxy-headers already takes the scheme from X-Forwarded-Proto.
if proxy_ssl_header := env_str("SECURE_PROXY_SSL_HEADER"):
    meta_name = proxy_ssl_header.upper().replace("-", "_")
    if not meta_name.startswith("HTTP_"):
        meta_name = "HTTP_" + meta_name
    SECURE_PROXY_SSL_HEADER = (meta_name, "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "events",
    "seats",
    "realtime",
    "loadtest",
    # Last: connects the user-copy invalidation (booking_site.auth_cache) in every process.
    "booking_site.apps.BookingSiteConfig",
]

MIDDLEWARE = [
    # First, so it sees every response (it gives each 503 a Retry-After); it also answers
    # a view's database fault that a retry can fix with 503 instead of 500.
    "booking_site.middleware.DatabaseBusyMiddleware",
    # A 5,000-seat map is ~1.4 MB of HTML and compresses ~10x. Django masks the CSRF token
    # per response and pads compressed bodies (BREACH mitigation).
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "booking_site.urls"
ASGI_APPLICATION = "booking_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# A request hands its connection back when it ends (CONN_MAX_AGE=0: request_finished closes
# it) instead of keeping it in the thread that served it. With PostgreSQL, closing returns it
# to a pool per process, shared by the WEB_THREADS request threads and the threads where
# WebSocket consumers and the sweeper query, which replaces connections a database restart
# dropped (below). With SQLite each request opens and closes its own.
DATABASES: dict[str, dict[str, Any]] = {
    "default": dict(
        dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
            conn_max_age=0,
            # With a pool, Django has psycopg_pool check each connection as it is handed
            # out (ConnectionPool.check_connection): one the server dropped (a restart, an
            # idle time-out) is replaced before a request gets it.
            conn_health_checks=True,
        )
    )
}
pool_max_size: int | None = None  # no pool (SQLite)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    pool_max_size = env_int("DB_POOL_MAX_SIZE", 20)
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": pool_max_size,
        # Past this wait for a free connection, a request answers 503 "busy".
        "timeout": env_float("DB_POOL_TIMEOUT", 10),
    }
    # A statement stuck longer (e.g. a read behind a table lock) is cancelled and the
    # request answers 503 "busy" instead of hanging. Keep it above BOOKING_LOCK_TIMEOUT_MS,
    # so a write waiting for row locks gets the booking "busy" answer first. 0: no limit.
    statement_timeout = f"-c statement_timeout={env_int('DB_STATEMENT_TIMEOUT_MS', 5000)}"
    options["options"] = f"{options.get('options', '')} {statement_timeout}".strip()
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks: every transaction takes the write lock up front (BEGIN
    # IMMEDIATE), so two bookings are serialized as a whole and cannot interleave.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 5,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Serving ----------------------------------------------------------------------------
# HTTP requests run through Django's WSGI handler in this many threads per web process
# (booking_site/asgi.py); WebSockets stay on the event loop. It bounds the requests a process
# serves at once: more wait, unread, for a free thread. Each busy thread holds one database
# connection, so it must not exceed DB_POOL_MAX_SIZE, and had better leave room for the
# WebSocket consumers' and the sweeper's short queries (a request that finds the pool empty
# waits up to DB_POOL_TIMEOUT, then answers 503). 16 of the default pool's 20 leaves them 4.
# Past a few, more threads buy one process little (the GIL) and cost connections: add
# processes instead.
WEB_THREADS = env_int("WEB_THREADS", min(16, pool_max_size or 16))
if WEB_THREADS < 1:
    raise ImproperlyConfigured("WEB_THREADS must be at least 1.")
if pool_max_size is not None and pool_max_size < WEB_THREADS:
    raise ImproperlyConfigured(
        f"WEB_THREADS ({WEB_THREADS}) must not exceed DB_POOL_MAX_SIZE ({pool_max_size}): "
        "each request thread holds a database connection, and requests would wait for "
        "connections instead of threads."
    )

# --- Channel layer and cache ----------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
# Keeps deployments that share one Redis apart (pub/sub ignores db numbers).
REDIS_PREFIX = env_str("REDIS_PREFIX", "seatline")
CHANNEL_LAYERS: dict[str, dict[str, Any]]
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # One PUBLISH per change; each process holds one subscription per event.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "prefix": REDIS_PREFIX,
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 defaults to a 5 s socket timeout, which kills an idle
                        # subscription; liveness comes from keepalive and health checks.
                        "socket_timeout": None,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 15,
                        "max_connections": 10_000,
                    }
                ],
            },
        }
    }
    # Shared by every process: the rate limits' counters hold across all of them (idempotency keys
    # live in the database).
    CACHES = {
        "default": {
            # Django's RedisCache, with one connection pool per process (booking_site/cache.py).
            "BACKEND": "booking_site.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
            # A dead or stuck Redis fails a cache call within a second instead of hanging
            # the request (redis-py would wait for the OS's TCP time-outs).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # Members of a group are dropped after group_expiry (default a day); a feed
            # joins its event's group once and may live for days.
            "CONFIG": {"capacity": 10_000, "group_expiry": 10 * 365 * 24 * 3600},
        }
    }
    # One process (the embedded default), so a per-process cache is the shared one.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Booking rules --------------------------------------------------------------------
BOOKING_LOCK_TIMEOUT_MS = env_int("BOOKING_LOCK_TIMEOUT_MS", 3000)
BOOKING_CURRENCY_SYMBOL = env_str("BOOKING_CURRENCY_SYMBOL", "€")
# On PostgreSQL a booking is one call of the database function seatline_book_seats (one
# round trip); off, it runs as the Python service does on SQLite (same rules, ~15 round
# trips). Both are tested; off is for comparing them.
BOOKINGS_IN_DATABASE = env_bool("BOOKINGS_IN_DATABASE", True)
# With PostgreSQL and Redis, POST /api/events/<id>/bookings is answered on the web process's
# event loop (booking_site.loop_bookings): its session, rate limit and statement through
# async clients, no thread. A request it cannot finish there without blocking (a session or
# user not in the cache, a cache outage, a keyed refusal) goes to the WEB_THREADS threads.
BOOKINGS_ON_LOOP = env_bool("BOOKINGS_ON_LOOP", True)
# Database connections each web process keeps for the bookings on its event loop, on top of
# DB_POOL_MAX_SIZE (one loop: a few carry many statements, each a round trip).
DB_LOOP_POOL_SIZE = env_int("DB_LOOP_POOL_SIZE", 8)
# Those connections prepare their statements (parsed and planned once per connection). Turn
# off behind a pooler that cannot keep prepared statements (PgBouncer < 1.21 in transaction
# mode).
DB_LOOP_PREPARED_STATEMENTS = env_bool("DB_LOOP_PREPARED_STATEMENTS", True)
# Seconds between sweeps of expired holds. The sweeper runs inside the web process when
# there is no Redis (one process), and as the Procfile's `worker` otherwise.
HOLD_SWEEP_INTERVAL = env_float("HOLD_SWEEP_INTERVAL", 1.0)
SWEEP_IN_WEB_PROCESS = env_bool("SWEEP_IN_WEB_PROCESS", not REDIS_URL)
# Live updates: a client further behind than this many versions gets a whole fresh map.
REALTIME_CATCHUP_LIMIT = env_int("REALTIME_CATCHUP_LIMIT", 500)
REALTIME_HEARTBEAT_SECONDS = env_float("REALTIME_HEARTBEAT_SECONDS", 15)
# Frames queued for one slow socket before it is closed (1013) and left to resync.
REALTIME_SOCKET_QUEUE = env_int("REALTIME_SOCKET_QUEUE", 200)
# ...or bytes queued (a whole 5,000-seat map is ~1.3 MB; a lone frame always goes through).
REALTIME_SOCKET_QUEUE_BYTES = env_int("REALTIME_SOCKET_QUEUE_BYTES", 4_000_000)
# Seconds a process stays subscribed to an event after its last viewer leaves.
REALTIME_FEED_LINGER = env_float("REALTIME_FEED_LINGER", 10)

# --- Auth, sessions -------------------------------------------------------------------
CSRF_FAILURE_VIEW = "seats.api.csrf_failure"
if REDIS_URL:
    # Sessions and the signed-in user come from their Redis copies: no database query for
    # either on a signed-in request; the database answers while Redis is down. (Without
    # Redis a per-process copy could outlive `manage.py changepassword` run elsewhere.)
    SESSION_ENGINE = "booking_site.sessions"
    AUTHENTICATION_BACKENDS = ["booking_site.auth_cache.CachedModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "event-list"
LOGOUT_REDIRECT_URL = "event-list"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `collectstatic` puts files. Until it has run, WhiteNoise warns that the folder is
# missing and serves the files from their apps (WHITENOISE_USE_FINDERS).
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve app static files straight from their packages (no collectstatic needed to run).
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # While Redis is down channels-redis logs a traceback about once a second per process;
        # realtime.feed reports the outage once (feed lost, sockets told) and its recovery.
        "channels_redis.pubsub": {"level": "CRITICAL"},
    },
}

# --- Rate limits and idempotency ------------------------------------------------------
_RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def env_rates(name: str, default: str) -> list[tuple[int, int]]:
    """A rate limit: comma-separated `COUNT/PERIOD` pairs, e.g. "30/10s,120/1m" (periods in
    s, m, h or d), as (count, seconds) pairs; "off" for none. Raises ImproperlyConfigured."""
    text = env_str(name, default)
    if text.lower() == "off":
        return []
    rates: list[tuple[int, int]] = []
    for part in text.split(","):
        count, _, period = (side.strip() for side in part.partition("/"))
        number, unit = period[:-1].strip() or "1", period[-1:]
        if not (count.isdigit() and number.isdigit() and unit in _RATE_PERIODS):
            raise ImproperlyConfigured(f"{name}: {part!r} is not COUNT/PERIOD such as 30/10s.")
        seconds = int(number) * _RATE_PERIODS[unit]
        if int(count) < 1 or seconds < 1:
            raise ImproperlyConfigured(f"{name}: {part!r} must allow at least 1 per period.")
        rates.append((int(count), seconds))
    return rates


# Seat actions (API holds and releases, map clicks, release-all) per customer per event.
RATE_LIMIT_SEAT_ACTIONS = env_rates("RATE_LIMIT_SEAT_ACTIONS", "30/10s,120/1m")
# Booking attempts (API and checkout) per customer.
RATE_LIMIT_BOOKINGS = env_rates("RATE_LIMIT_BOOKINGS", "10/1m")
# Form posts per client address (REMOTE_ADDR; an IPv6 client by its /64).
RATE_LIMIT_LOGIN = env_rates("RATE_LIMIT_LOGIN", "10/1m")
RATE_LIMIT_SIGNUP = env_rates("RATE_LIMIT_SIGNUP", "5/1h")
# How long the answer to an API write sent with an Idempotency-Key is kept for its retries.
IDEMPOTENCY_KEY_TTL_HOURS = env_float("IDEMPOTENCY_KEY_TTL_HOURS", 24)

# --- Audit retention ---
# Days of seat changes kept (the admin's audit log and what reconnecting viewers replay);
# the worker deletes older ones hourly (`manage.py prune_seat_changes`).
SEAT_CHANGE_RETENTION_DAYS = env_int("SEAT_CHANGE_RETENTION_DAYS", 30)
if SEAT_CHANGE_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("SEAT_CHANGE_RETENTION_DAYS must be at least 1 (days).")
