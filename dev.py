#!/usr/bin/env python3
"""The two commands, needing nothing but Python 3.11+:

    python3 dev.py serve   # virtualenv, install, migrate, seed the demo, run http://127.0.0.1:8000
    python3 dev.py test    # virtualenv, install with test extras, run the test suite

Extra arguments after `test` go to pytest; after `serve`, to uvicorn.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def run(*args: str, **kwargs) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, **kwargs)


def ensure_venv(extras: str) -> None:
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = (ROOT / "pyproject.toml").read_bytes() + extras.encode()
    stamp = VENV / ".installed"
    digest = hashlib.sha256(spec).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", f".{extras}")
    stamp.write_text(digest)


def serve(args: list[str]) -> None:
    ensure_venv("")
    env = {**os.environ}
    env.setdefault("DEBUG", "1")
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


def test(args: list[str]) -> None:
    ensure_venv("[test]")
    result = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)
    sys.exit(result.returncode)


def main() -> None:
    commands = {"serve": serve, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
