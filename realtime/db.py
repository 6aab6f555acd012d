"""Database work from async code: in a worker thread, with connections kept healthy."""

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def in_worker_thread(fn):
    """Returns an async callable running `fn` in a worker thread (not the one thread Django
    reserves for sync views), releasing broken or expired connections before and after."""

    def call(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)
