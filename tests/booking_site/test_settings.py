"""Production settings: refused without a strong key, `check --deploy` clean with the env of
.env.example, every variable documented, a shared cache that a dead Redis cannot hang."""

import os
import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.checks.security.base import SECRET_KEY_INSECURE_PREFIX
from django.core.exceptions import ImproperlyConfigured

from booking_site.settings import production_secret_key

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS_VARIABLE = re.compile(r"""env_\w+\(\s*["']([A-Z0-9_]+)["']""")


def env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def production_env(**overrides: str) -> dict[str, str]:
    """This environment with the production settings module and .env.example's values."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(env_example(), DJANGO_SETTINGS_MODULE="booking_site.settings", **overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_is_clean_with_the_env_example_and_a_real_key():
    # The one value .env.example must leave to the operator.
    env = production_env(SECRET_KEY=secrets.token_urlsafe(50))

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_env_example_as_it_stands_refuses_to_start_without_a_key():
    result = manage(production_env(), "check")

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    "key",
    [
        "x",
        secrets.token_urlsafe(30),  # 40 characters
        "abcd" * 20,  # 4 distinct characters
        SECRET_KEY_INSECURE_PREFIX + secrets.token_urlsafe(50),
    ],
    ids=["one character", "short", "few distinct characters", "django-insecure prefix"],
)
def test_a_weak_key_is_refused_with_debug_off(key):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is too weak"):
        production_secret_key(key)


def test_a_strong_key_is_accepted():
    key = secrets.token_urlsafe(50)

    assert production_secret_key(key) == key


def test_debug_runs_without_a_key_and_production_refuses_a_weak_one():
    code = "from django.conf import settings; print(settings.SECRET_KEY[:16])"
    env = production_env(DEBUG="1", SECRET_KEY="")
    debug = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    weak = manage(production_env(SECRET_KEY="change-me"), "check")

    assert debug.returncode == 0, debug.stderr
    assert debug.stdout.splitlines()[-1] == SECRET_KEY_INSECURE_PREFIX
    assert weak.returncode != 0
    assert "SECRET_KEY is too weak" in weak.stderr


def test_the_env_example_and_the_readme_name_every_variable_the_settings_read():
    read = set(SETTINGS_VARIABLE.findall((ROOT / "booking_site" / "settings.py").read_text()))
    readme = (ROOT / "README.md").read_text()

    assert read  # the pattern still matches how settings.py reads the environment
    assert read - set(env_example()) == set()
    assert {name for name in read if f"`{name}`" not in readme} == set()


@pytest.fixture
def silent_redis():
    """A TCP port that accepts connections and never answers: a hung Redis."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_a_hung_redis_fails_a_cache_call_within_seconds_instead_of_hanging(silent_redis):
    env = production_env(SECRET_KEY=secrets.token_urlsafe(50), REDIS_URL=silent_redis)
    code = (
        "import time; from django.core.cache import cache; start = time.monotonic()\n"
        "try:\n    cache.get('rate:1')\nexcept Exception as exc:\n"
        "    print(type(exc).__name__, round(time.monotonic() - start, 1))\n"
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    error, seconds = result.stdout.splitlines()[-1].split()
    assert "Timeout" in error
    assert float(seconds) < 3


@pytest.mark.redis
def test_processes_on_one_redis_share_the_cache_and_prefixes_keep_deployments_apart():
    key = f"shared-{secrets.token_hex(4)}"
    cache.set(key, "from the test process", timeout=60)
    code = f"from django.core.cache import cache; print(cache.get({key!r}))"

    def read(prefix: str) -> str:
        env = production_env(
            SECRET_KEY=secrets.token_urlsafe(50),
            REDIS_URL=os.environ["REDIS_URL"],
            REDIS_PREFIX=prefix,
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[-1]

    # This test's own prefix (tests/conftest.py gives every test one), as REDIS_PREFIX.
    prefix = cache.key_prefix
    try:
        assert read(prefix) == "from the test process"
        assert read(prefix + "-other") == "None"
    finally:
        cache.delete(key)


def test_behind_a_tls_proxy_http_redirects_and_https_gets_hsts(tmp_path):
    """With .env.example's HTTPS settings and the proxy's header named, a request the proxy
    marks as HTTPS is served with HSTS; any other is redirected to HTTPS."""
    env = production_env(
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="testserver",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        REDIS_URL="",
    )
    code = (
        "from django.test import Client\n"
        "path = '/static/realtime/live.js'\n"
        "secure = Client().get(path, headers={'X-Forwarded-Proto': 'https'})\n"
        "plain = Client().get(path)\n"
        "print(secure.status_code, secure['Strict-Transport-Security'])\n"
        "print(plain.status_code, plain['Location'])\n"
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    secure, plain = result.stdout.splitlines()[-2:]
    assert secure == "200 max-age=31536000; includeSubDomains; preload"
    assert plain == "301 https://testserver/static/realtime/live.js"
