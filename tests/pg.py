"""A second PostgreSQL session beside the test's own: another customer's transaction, a stuck
booking, a long migration."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def another_session() -> Iterator[psycopg.Connection]:
    """Opens a connection to the test database and a transaction on it; whatever it locks
    stays locked until the block ends."""
    params = connection.get_connection_params()
    with (
        psycopg.connect(
            host=params.get("host"),
            port=params.get("port"),
            user=params.get("user"),
            dbname=params["dbname"],
        ) as other,
        other.transaction(),
    ):
        yield other
