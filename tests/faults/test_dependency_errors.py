"""The JSON 503 with Retry-After for a request that failed because PostgreSQL or Redis is unreachable."""

from __future__ import annotations

import json

import kombu.exceptions
import pytest
import redis
from django.db import OperationalError
from django.test import RequestFactory
from rest_framework.exceptions import NotFound

from config.api import DEPENDENCY_RETRY_AFTER_SECONDS, exception_handler, server_error_view

UNREACHABLE = [
    OperationalError("connection to server on socket failed: No such file or directory"),
    redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
]


@pytest.mark.parametrize("error", UNREACHABLE, ids=lambda error: type(error).__module__)
def test_api_error_for_unreachable_dependency_is_503(error):
    request = RequestFactory().post("/api/v1/onboard")

    response = exception_handler(error, {"request": request})

    assert response.status_code == 503
    assert response["Retry-After"] == str(DEPENDENCY_RETRY_AFTER_SECONDS)
    assert response.data["code"] == "dependency_unavailable"
    assert "unreachable" in response.data["detail"]


def test_api_error_handler_leaves_other_errors_alone():
    response = exception_handler(NotFound("No such request."), {"request": RequestFactory().get("/api/v1/x")})

    assert response.status_code == 404


def test_server_error_view_answers_503_inside_middleware_failure():
    request = RequestFactory().get("/api/v1/ztp/lookup")

    try:
        raise OperationalError("the connection is lost")
    except OperationalError:
        response = server_error_view(request)

    assert response.status_code == 503
    assert response["Retry-After"] == str(DEPENDENCY_RETRY_AFTER_SECONDS)
    assert json.loads(response.content)["code"] == "dependency_unavailable"


def test_server_error_view_answers_500_for_a_bug():
    request = RequestFactory().get("/api/v1/ztp/lookup")

    try:
        raise KeyError("product_id")
    except KeyError:
        response = server_error_view(request)

    assert response.status_code == 500
    assert "Retry-After" not in response
