import pytest

from .servers import manage, server_env, start_server, stop


@pytest.fixture
def sqlite_server(tmp_path):
    env = server_env(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrated = manage(env, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    process, url = start_server(env, tmp_path / "server.log")
    yield env, url
    stop(process)
