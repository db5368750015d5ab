"""Database connections used outside Django's request cycle (thread pools of async code)."""

from __future__ import annotations

import functools

from django.db import connection, connections


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


def copy_instances(model, instances) -> int:
    """Insert unsaved ``instances`` of ``model`` with PostgreSQL COPY; return how many.

    For hundreds of rows COPY costs far less than the INSERT of bulk_create,
    which binds every value into the statement text. Like bulk_create it sends
    no signals; unlike it, the instances get no primary keys. The rows go to
    the table on the connection's search path, as any query would.
    """
    fields = [field for field in model._meta.concrete_fields if field is not model._meta.auto_field]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    count = 0
    with connection.cursor() as cursor, cursor.copy(
        f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    ) as copy:
        for instance in instances:
            # pre_save fills auto_now_add dates, as an INSERT through the ORM would.
            copy.write_row([field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields])
            count += 1
    return count


def release_stale_connections(**_signal_kwargs) -> None:
    """Hand back every open connection of this thread that is past its age or has failed (a Celery task_prerun handler).

    A Celery worker keeps its connections between tasks (CELERY_DB_REUSE_MAX),
    and nothing ends a "request" there, so a connection that PostgreSQL
    closed (a restart, a failover) would fail the next task. With the
    psycopg pool and CONN_MAX_AGE 0, this returns the connection to the pool,
    and the pool's health check replaces a broken one at the next query.
    """
    for alias in connections:
        wrapper = connections[alias]
        if wrapper.connection is not None and not wrapper.in_atomic_block:
            wrapper.close_if_unusable_or_obsolete()
