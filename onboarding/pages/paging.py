"""Keyset pagination of the tenant admin lists: no COUNT of the table and no OFFSET, so every page costs the same."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.http import QueryDict

from onboarding.pages.common import PAGE_SIZE


@dataclass
class Page:
    """One page of rows and the cursors of the pages next to it (None where there is none)."""

    rows: list
    next_cursor: Any
    previous_cursor: Any


def _reversed_order(order: list[str]) -> list[str]:
    return [field[1:] if field.startswith("-") else f"-{field}" for field in order]


def keyset_page(queryset: QuerySet, order: list[str], *, cursor_of: Callable[[Any], Any],
                after: Q | None = None, before: Q | None = None, size: int = PAGE_SIZE) -> Page:
    """Return the page of ``queryset`` in ``order`` that follows the ``after`` rows or precedes the ``before`` rows.

    ``after`` and ``before`` select the rows past a cursor row in list order and
    ahead of it. ``order`` must end with a unique field, so that no two rows tie.
    One extra row is read to tell whether another page follows.
    """
    if before is not None:
        rows = list(queryset.filter(before).order_by(*_reversed_order(order))[: size + 1])
        has_previous = len(rows) > size
        rows = rows[:size][::-1]
        return Page(rows, cursor_of(rows[-1]) if rows else None,
                    cursor_of(rows[0]) if rows and has_previous else None)
    if after is not None:
        queryset = queryset.filter(after)
    rows = list(queryset.order_by(*order)[: size + 1])
    has_next = len(rows) > size
    rows = rows[:size]
    return Page(rows, cursor_of(rows[-1]) if rows and has_next else None,
                cursor_of(rows[0]) if rows and after is not None else None)


def page_link(query: QueryDict, cursor_keys: tuple[str, str], key: str, cursor) -> str:
    """Return a query string with every parameter of ``query`` (filters, the other list's cursor) and a new cursor."""
    params = query.copy()
    for name in cursor_keys:
        params.pop(name, None)
    params[key] = str(cursor)
    return "?" + params.urlencode()
