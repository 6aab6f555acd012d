import shutil

import pytest

from tests.servers import ThrowawayRedis


@pytest.fixture
def throwaway_redis(tmp_path):
    """A Redis of the test's own, to stop, freeze and restart (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH (apt-get install redis-server)")
    redis = ThrowawayRedis(tmp_path).start()
    yield redis
    redis.stop()
