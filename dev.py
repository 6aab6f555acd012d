#!/usr/bin/env python3
"""The two commands, needing nothing but Python 3.11+:

    python3 dev.py serve   # virtualenv, install, migrate, seed the demo, run http://127.0.0.1:8000
    python3 dev.py test    # virtualenv, install with test extras, run the test suite

and, for any management command with the same development defaults as `serve`:

    python3 dev.py manage <command> [args]   # e.g. python3 dev.py manage createsuperuser

Extra arguments after `test` go to pytest; after `serve`, to uvicorn.
"""

import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, env=env)


def ensure_venv(extras: str) -> None:
    """Creates the virtualenv and installs the project with `extras` ("" or "[test]"),
    unless this pyproject.toml is already installed there with those extras or more."""
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / ".installed"  # "<pyproject digest> <extras>" per line installed
    installed = stamp.read_text().splitlines() if stamp.exists() else []
    if f"{digest} {extras}" in installed or f"{digest} [test]" in installed:
        return  # the test extras include everything `serve` needs
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", f".{extras}")
    stamp.write_text(f"{digest} {extras}\n")


def development_env() -> dict[str, str]:
    """The environment with the development defaults (DEBUG on unless set)."""
    env = {**os.environ}
    env.setdefault("DEBUG", "1")
    # Where collectstatic would put files; WhiteNoise warns when it is missing.
    (ROOT / "var" / "static").mkdir(parents=True, exist_ok=True)
    return env


def serve(args: list[str]) -> None:
    ensure_venv("")
    env = development_env()
    run(PYTHON, "manage.py", "migrate", "--noinput", env=env)
    run(PYTHON, "manage.py", "seed_demo", env=env)
    host = env.get("HOST", "127.0.0.1")
    port = env.get("PORT", "8000")
    print(f"\nSeat maps at http://{host}:{port}/  (Ctrl-C to stop)\n", flush=True)
    os.chdir(ROOT)
    os.execve(
        str(BIN / "uvicorn"),
        [
            "uvicorn",
            "booking_site.asgi:application",
            "--host",
            host,
            "--port",
            port,
            "--ws-per-message-deflate",
            "false",
            *args,
        ],
        env,
    )


def manage(args: list[str]) -> None:
    ensure_venv("")
    result = subprocess.run(
        [str(PYTHON), "manage.py", *args], cwd=ROOT, env=development_env(), check=False
    )
    sys.exit(result.returncode)


def test(args: list[str]) -> None:
    ensure_venv("[test]")
    result = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, check=False)
    sys.exit(result.returncode)


def main() -> None:
    commands: dict[str, Callable[[list[str]], None]] = {
        "serve": serve,
        "test": test,
        "manage": manage,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
