"""Settings for the test suite: the production settings (booking_site.settings) with the
test-only changes below.

pytest-django exports DJANGO_SETTINGS_MODULE=tests.settings (pyproject.toml), and the
servers and commands the tests start inherit the environment, so they run on these settings
too, with the environment variables set here.
"""

import os

# Tests run with DEBUG off, as production does, so they need a key that passes the
# production rule. It is fixed, whatever the environment says, so every process of a test
# run signs and reads sessions alike.
os.environ["SECRET_KEY"] = "tests-only-secret-key-never-use-it-anywhere-else-0123456789"
# Test runs sharing one Redis (pub/sub ignores db numbers) must not hear each other's events:
# the test databases of two runs number their events alike.
os.environ.setdefault("REDIS_PREFIX", f"seatline-test-{os.getpid()}")
# Long enough for the concurrency tests' queues on a loaded machine; tests of the statement
# time-out start servers with their own.
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "60000")

from booking_site.settings import *  # noqa: F403
from booking_site.settings import BASE_DIR, DATABASES, STATIC_ROOT

# WhiteNoise warns about a missing STATIC_ROOT in every server a test starts.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so servers started by the tests can open the test database too;
    # one per test run (conftest removes it), so runs side by side do not share one.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}
