"""The web's /metrics: access control, request and lookup counters, gauges read from the tenant schemas."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tests.deploy.helpers import parse_samples, sample, scrape_client
from tests.factories import make_csr, new_product_id, provision_products
from tests.gateway.helpers import onboard_ec

TOKEN = "metrics-test-token"


@pytest.fixture(autouse=True)
def _fresh_database_gauges(settings):
    settings.ZTSP_METRICS_CACHE_SECONDS = 0
    settings.ZTSP_METRICS_TOKEN = ""


def test_metrics_served_to_loopback_without_token(world):
    response = Client(HTTP_HOST="localhost").get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "ztsp_http_requests_total" in response.content.decode()


def test_metrics_rejects_remote_without_token(world):
    response = Client(HTTP_HOST="localhost", REMOTE_ADDR="203.0.113.7").get("/metrics")

    assert response.status_code == 403
    assert response.json()["code"] == "metrics_forbidden"


def test_metrics_token_rejects_missing_or_wrong(world, settings):
    settings.ZTSP_METRICS_TOKEN = TOKEN
    client = Client(HTTP_HOST="localhost")

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")

    assert missing.status_code == 401
    assert missing.json()["code"] == "metrics_token_invalid"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 401


def test_metrics_token_admits_remote_client(world, settings):
    settings.ZTSP_METRICS_TOKEN = TOKEN

    response = Client(HTTP_HOST="localhost", REMOTE_ADDR="203.0.113.7").get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200


def test_http_requests_counted_by_method_and_status(world):
    client = Client(HTTP_HOST="localhost")
    before = scrape_client(client)

    client.get("/api/v1/no-such-endpoint")
    after = scrape_client(client)

    assert sample(after, "ztsp_http_requests_total", method="GET", status="404") == \
        sample(before, "ztsp_http_requests_total", method="GET", status="404") + 1


def test_ztp_lookups_counted_by_outcome(world):
    client = Client(HTTP_HOST="localhost")
    [mapped] = provision_products(world.a.msp, world.a.registration)
    before = scrape_client(client)

    for product_id in (mapped, new_product_id()):
        client.post("/api/v1/ztp/lookup", {"product_id": product_id}, content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {world.provisioning_key}")
    client.post("/api/v1/ztp/lookup", {"product_id": mapped}, content_type="application/json",
                HTTP_AUTHORIZATION="Bearer wrong-key")
    after = scrape_client(client)

    for outcome in ("ok", "unknown_product", "access_key_unknown"):
        assert sample(after, "ztsp_ztp_lookups_total", outcome=outcome) == \
            sample(before, "ztsp_ztp_lookups_total", outcome=outcome) + 1, outcome


def test_onboard_requests_gauge_by_schema_and_status(world):
    from onboarding.services import submit_onboard_request

    client = Client(HTTP_HOST="localhost")
    before = scrape_client(client)
    product_id = new_product_id()
    csr_pem, _key = make_csr(product_id)
    with schema_context("acme"):
        submit_onboard_request(product_id, csr_pem, {}, source_address="127.0.0.1")

    after = scrape_client(client)

    assert sample(after, "ztsp_onboard_requests", schema="acme", status="pending") == \
        sample(before, "ztsp_onboard_requests", schema="acme", status="pending") + 1
    assert sample(after, "ztsp_onboard_requests", schema="globex", status="pending") == \
        sample(before, "ztsp_onboard_requests", schema="globex", status="pending")


def test_certificates_issued_counted_by_schema(world):
    client = Client(HTTP_HOST="localhost")
    before = scrape_client(client)

    onboard_ec(world.b)
    after = scrape_client(client)

    assert sample(after, "ztsp_certificates_issued_total", schema="globex") == \
        sample(before, "ztsp_certificates_issued_total", schema="globex") + 1
    assert sample(after, "ztsp_certificates_active", schema="globex") == \
        sample(before, "ztsp_certificates_active", schema="globex") + 1
    assert sample(after, "ztsp_database_metrics_up") == 1


def test_database_gauges_reused_within_cache_time(world, settings):
    settings.ZTSP_METRICS_CACHE_SECONDS = 3600
    client = Client(HTTP_HOST="localhost")
    before = scrape_client(client)

    onboard_ec(world.b)
    after = scrape_client(client)

    assert sample(after, "ztsp_certificates_issued_total", schema="globex") == \
        sample(before, "ztsp_certificates_issued_total", schema="globex")


def test_metrics_text_parses_as_prometheus_exposition(world):
    response = Client(HTTP_HOST="localhost").get("/metrics")

    samples = parse_samples(response.content.decode())

    assert ("ztsp_database_metrics_up", frozenset()) in samples
