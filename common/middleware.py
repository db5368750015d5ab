"""Checks that run on every request before the views."""

from __future__ import annotations

from config.api import error_response


class RejectNulCharactersMiddleware:
    """Reject a request whose path or query string contains a NUL character with 400 ``invalid_url``.

    PostgreSQL text cannot contain NUL, so a NUL that reaches a query as a path
    parameter or a filter value fails in the database with a 500. No resource
    name or filter value of this project contains one.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        in_query = any("\x00" in key or any("\x00" in value for value in values)
                       for key, values in request.GET.lists())
        if "\x00" in request.path or in_query:
            return error_response(400, "invalid_url",
                                  "The URL contains a NUL character (%00), which no resource name or filter "
                                  "value contains; remove it.")
        return self.get_response(request)
