"""The JSON error shape of every API: ``{"code": ..., "detail": ...}``.

``code`` is a stable machine-readable string; ``detail`` is a sentence for a
person that names the value at fault and what to do. Validation errors add
``errors``: field name to a list of messages, covering every bad field.
"""

from __future__ import annotations

import logging
import sys

import kombu.exceptions
import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

# Errors that mean PostgreSQL, Redis or the Celery broker cannot be reached
# (down, restarting, or the connection pool timed out waiting for them), not
# that the request is wrong. A client should send the same request again later.
# psycopg_pool's PoolTimeout reaches Django code as OperationalError.
DEPENDENCY_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    kombu.exceptions.OperationalError,
)
# Seconds in the Retry-After header of a 503 for an unreachable dependency: a
# PostgreSQL or Redis restart usually takes a few seconds.
DEPENDENCY_RETRY_AFTER_SECONDS = 5


class ApiError(exceptions.APIException):
    """An API error with an explicit HTTP status, code and detail."""

    def __init__(self, status_code: int, code: str, detail: str, *, headers: dict | None = None,
                 extra: dict | None = None):
        self.status_code = status_code
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(detail=detail, code=code)


def error_body(code: str, detail: str, **extra) -> dict:
    return {"code": code, "detail": detail, **extra}


def error_response(status_code: int, code: str, detail: str, *, headers: dict | None = None,
                   **extra) -> JsonResponse:
    response = JsonResponse(error_body(code, detail, **extra), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


DEPENDENCY_UNAVAILABLE_DETAIL = (
    "The database or the message broker is unreachable; send the same request again after "
    f"{DEPENDENCY_RETRY_AFTER_SECONDS} seconds."
)
DEPENDENCY_RETRY_HEADERS = {"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)}


def log_dependency_error(error: BaseException, path: str) -> None:
    logger.warning("Request to %s failed because a dependency is unreachable: %s: %s", path,
                   type(error).__name__, error)


def dependency_unavailable_response(error: BaseException, path: str) -> JsonResponse:
    """Return the 503 for a request that failed because ``error`` says a dependency is unreachable."""
    log_dependency_error(error, path)
    return error_response(503, "dependency_unavailable", DEPENDENCY_UNAVAILABLE_DETAIL,
                          headers=DEPENDENCY_RETRY_HEADERS)


def _first_code(codes) -> str:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, dict):
        for value in codes.values():
            return _first_code(value)
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    return "invalid"


def exception_handler(exc, context):
    """DRF exception handler that renders every error in the ``code``/``detail`` shape."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            error_body("body_too_large", f"The request body exceeds the limit of {limit} bytes; send a smaller body."),
            status=413,
        )
    if isinstance(exc, DEPENDENCY_ERRORS):
        request = context.get("request")
        log_dependency_error(exc, request.path if request is not None else "?")
        return Response(error_body("dependency_unavailable", DEPENDENCY_UNAVAILABLE_DETAIL), status=503,
                        headers=DEPENDENCY_RETRY_HEADERS)
    if isinstance(exc, ApiError):
        response = drf_exception_handler(exc, context)
        response.data = error_body(exc.code, str(exc.detail), **exc.extra)
        for name, value in exc.headers.items():
            response[name] = value
        return response

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        if set(errors) == {"non_field_errors"}:
            # A non-object body or a rule across fields is explained by its own message, not by a field list.
            detail = "Invalid request body: " + " ".join(str(message) for message in errors["non_field_errors"])
        else:
            detail = f"Invalid request body: check the fields {', '.join(sorted(errors))}."
        response.data = error_body(_first_code(exc.get_codes()), detail, errors=errors)
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body(
            "throttled",
            f"Too many requests; retry after {exc.wait:.0f} seconds." if exc.wait else "Too many requests.",
        )
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body("malformed_body", f"The request body is not valid JSON: {exc.detail}")
    else:
        code = _first_code(exc.get_codes()) if hasattr(exc, "get_codes") else "error"
        response.data = error_body(code, str(exc.detail) if hasattr(exc, "detail") else str(exc))
    return response


def unknown_host_view(request):
    from tenants.middleware import unknown_host_response

    return unknown_host_response(request)


def not_found_view(request, exception=None):
    # Machine clients (the APIs, EST) get JSON; people on the portal pages get the HTML page.
    if not request.path.startswith(("/api/", "/.well-known/")):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return error_response(404, "not_found", f"Nothing is served at {request.path!r}; check the URL.")


def server_error_view(request):
    # Django calls this handler inside its except block, so the exception is still current. Middleware
    # (the tenant lookup, sessions) and non-DRF views raise there without passing DRF's handler.
    error = sys.exc_info()[1]
    if isinstance(error, DEPENDENCY_ERRORS):
        return dependency_unavailable_response(error, request.path)
    return error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "server_error",
        "The server failed to handle the request; it has been logged. Retry later.",
    )
