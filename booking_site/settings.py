"""Settings, all from the environment (see .env.example).

With nothing set, the site runs on a SQLite file and the in-memory channel layer: one
process. With DATABASE_URL (PostgreSQL) and REDIS_URL it runs as many processes as needed.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    # pytest sets PYTEST_VERSION for the test session; nothing else runs without a key.
    if not DEBUG and "PYTEST_VERSION" not in os.environ:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

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
]

MIDDLEWARE = [
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
    "booking_site.middleware.DatabaseBusyMiddleware",
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
# Under ASGI Django serves each request in a thread of its own, so a persistent
# connection (CONN_MAX_AGE > 0) would be left behind by every request: connections are
# pooled instead (PostgreSQL), and closed after each request otherwise.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": int(os.environ.get("DB_POOL_MIN_SIZE", "2")),
        "max_size": int(os.environ.get("DB_POOL_MAX_SIZE", "20")),
        # Past this wait for a free connection, a request answers 503 "busy".
        "timeout": float(os.environ.get("DB_POOL_TIMEOUT", "10")),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks: every transaction takes the write lock up front (BEGIN
    # IMMEDIATE), so two bookings are serialized as a whole and cannot interleave.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 5,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so servers started by the tests can open the test database too.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer --------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # One PUBLISH per change; each process holds one subscription per event.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # Keeps deployments that share one Redis apart (pub/sub ignores db numbers).
                "prefix": os.environ.get("REDIS_PREFIX", "seatline"),
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
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 10_000},
        }
    }

# --- Booking rules --------------------------------------------------------------------
BOOKING_LOCK_TIMEOUT_MS = int(os.environ.get("BOOKING_LOCK_TIMEOUT_MS", "3000"))
BOOKING_CURRENCY_SYMBOL = os.environ.get("BOOKING_CURRENCY_SYMBOL", "€")
# Seconds between sweeps of expired holds. The sweeper runs inside the web process when
# there is no Redis (one process), and as the Procfile's `worker` otherwise.
HOLD_SWEEP_INTERVAL = float(os.environ.get("HOLD_SWEEP_INTERVAL", "1.0"))
SWEEP_IN_WEB_PROCESS = env_bool("SWEEP_IN_WEB_PROCESS", not REDIS_URL)
# Live updates: a client further behind than this many versions gets a whole fresh map.
REALTIME_CATCHUP_LIMIT = int(os.environ.get("REALTIME_CATCHUP_LIMIT", "500"))
REALTIME_HEARTBEAT_SECONDS = float(os.environ.get("REALTIME_HEARTBEAT_SECONDS", "15"))
# Frames queued for one slow socket before it is closed (1013) and left to resync.
REALTIME_SOCKET_QUEUE = int(os.environ.get("REALTIME_SOCKET_QUEUE", "200"))
# ...or bytes queued (a whole 5,000-seat map is ~1.3 MB; a lone frame always goes through).
REALTIME_SOCKET_QUEUE_BYTES = int(os.environ.get("REALTIME_SOCKET_QUEUE_BYTES", "4000000"))
# Seconds a process stays subscribed to an event after its last viewer leaves.
REALTIME_FEED_LINGER = float(os.environ.get("REALTIME_FEED_LINGER", "10"))

# --- Auth, sessions -------------------------------------------------------------------
CSRF_FAILURE_VIEW = "seats.api.csrf_failure"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "event-list"
LOGOUT_REDIRECT_URL = "event-list"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise expects it to exist
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
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
