"""Database connections used outside Django's request cycle (thread pools of async code)."""

from __future__ import annotations

import functools

from django.db import connection


def released_connection(function):
    """Run ``function`` and then hand its thread's connection back (to the pool, or closed).

    Django returns a connection when a request ends. Code run from a thread
    pool has no request end, so without this each pool thread would keep a
    connection for good. A connection inside a caller's transaction is left
    alone.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            if not connection.in_atomic_block:
                connection.close()

    return wrapper
