"""Database work from async code: in a worker thread, with connections kept healthy."""

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


def in_worker_thread(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Returns an async callable running `fn` in a worker thread (not the one thread Django
    reserves for sync views), releasing broken or expired connections before and after."""

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)
