"""Tests for ``POST /api/v1/ztp/lookup``: every status code, last-seen fields, throttling and logging."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from msp.services.products import allocate_products, numbered
from provisioning.models import Product
from provisioning.product_ids import normalize_product_id
from provisioning.throttles import ProductThrottle
from tests.factories import VENDOR, new_product_id, provision_products
from tests.provisioning.helpers import claimed_product, imported_product, post_lookup


@pytest.fixture
def mapped_product(world) -> str:
    return provision_products(world.a.msp, world.a.registration)[0]


def assert_error(response, status: int, code: str) -> dict:
    """Check the status and the ``{"code", "detail"}`` error shape, and return the body."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def product(product_id: str) -> Product:
    return Product.objects.get(product_id=product_id)


# --- 200 ------------------------------------------------------------------------------------


def test_lookup_mapped_product_returns_director(world, lookup, mapped_product):
    response = lookup(mapped_product)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "product_id": mapped_product,
        "director_url": world.a.registration.management_url,
        "access_key": world.a.tenant_access_key,
    }


def test_lookup_returns_mapped_tenant_of_other_msp(world, lookup):
    product_id = provision_products(world.b.msp, world.b.registration)[0]

    response = lookup(product_id)

    assert response.status_code == 200, response.content
    assert response.json()["director_url"] == world.b.registration.management_url
    assert response.json()["access_key"] == world.b.tenant_access_key


@pytest.mark.parametrize("form", ["lower", "braced", "upper_uuid", "spaces"])
def test_lookup_other_form_finds_canonical_product(world, lookup, mapped_product, form):
    model, uuid_text = mapped_product.split(":")
    presented = {
        "lower": mapped_product.lower(),
        "braced": f"{model.lower()}:{{{uuid_text.upper()}}}",
        "upper_uuid": f"{model}:{uuid_text.upper()}",
        "spaces": f"  {mapped_product}  ",
    }[form]

    response = lookup(presented)

    assert response.status_code == 200, response.content
    assert response.json()["product_id"] == mapped_product


# --- 400 ------------------------------------------------------------------------------------


def test_lookup_malformed_product_id_returns_400(lookup):
    body = assert_error(lookup("EC100-no-colon"), 400, "invalid_product_id")

    assert "EC100-no-colon" in body["detail"]


def test_lookup_bare_hex_uuid_returns_400(lookup):
    assert_error(lookup("EC100:7c9e6679742540de944be07fc1f90ae7"), 400, "invalid_product_id")


def test_lookup_non_json_body_returns_400(world, public_client):
    response = post_lookup(public_client, "{not json", key=world.provisioning_key)

    assert_error(response, 400, "malformed_body")


def test_lookup_form_body_returns_415(world, public_client):
    response = post_lookup(public_client, "product_id=EC100", key=world.provisioning_key,
                           content_type="application/x-www-form-urlencoded")

    assert_error(response, 415, "unsupported_media_type")


def test_lookup_missing_product_id_returns_400(world, public_client):
    response = post_lookup(public_client, {"facts": {}}, key=world.provisioning_key)

    body = assert_error(response, 400, "required")
    assert list(body["errors"]) == ["product_id"]


def test_lookup_blank_product_id_returns_400(lookup):
    body = assert_error(lookup("   "), 400, "blank")

    assert list(body["errors"]) == ["product_id"]


def test_lookup_json_array_body_returns_400(world, public_client):
    response = post_lookup(public_client, ["EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7"],
                           key=world.provisioning_key)

    body = assert_error(response, 400, "invalid")
    assert list(body["errors"]) == ["non_field_errors"]


@pytest.mark.parametrize("facts", ["model=EC100", ["EC100"], 7])
def test_lookup_facts_not_object_returns_400(lookup, mapped_product, facts):
    body = assert_error(lookup(mapped_product, facts=facts), 400, "not_a_dict")

    assert list(body["errors"]) == ["facts"]


def test_lookup_too_many_facts_returns_400(lookup, mapped_product):
    facts = {f"fact{index}": index for index in range(51)}

    body = assert_error(lookup(mapped_product, facts=facts), 400, "invalid")

    assert list(body["errors"]) == ["facts"]


def test_lookup_oversized_facts_returns_400(lookup, mapped_product):
    facts = {"serial": "S" * 10_000}

    response = lookup(mapped_product, facts=facts)

    assert response.status_code == 400, response.content
    assert product(mapped_product).last_facts == {}


def test_lookup_too_large_body_returns_413(world, public_client):
    body = {"product_id": new_product_id(), "facts": {"blob": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}}

    assert_error(post_lookup(public_client, body, key=world.provisioning_key), 413, "body_too_large")


# --- 401 before anything about the product --------------------------------------------------


@pytest.mark.parametrize("key", [None, "ztsp_pk_0123456789ab_" + "A" * 43, "garbage"])
def test_lookup_without_valid_key_hides_unknown_product(lookup, key):
    response = lookup(new_product_id(), key=key)

    assert response.status_code == 401, response.content
    assert response.json()["code"] in {"access_key_missing", "access_key_unknown"}


def test_lookup_without_valid_key_hides_malformed_id(lookup):
    assert_error(lookup("EC100", key="garbage"), 401, "access_key_unknown")


def test_lookup_without_valid_key_hides_product_state(lookup, mapped_product):
    Product.objects.filter(product_id=mapped_product).update(state=Product.State.DISABLED)

    assert_error(lookup(mapped_product, key="garbage"), 401, "access_key_unknown")


def test_lookup_without_valid_key_leaves_last_seen(lookup, mapped_product):
    lookup(mapped_product, key="garbage", facts={"firmware": "1.0"})

    assert product(mapped_product).last_lookup_at is None


# --- 403, 404, 409 --------------------------------------------------------------------------


@pytest.mark.parametrize("state", [Product.State.DISABLED, Product.State.DECOMMISSIONED])
def test_lookup_inactive_product_returns_403(lookup, mapped_product, state):
    Product.objects.filter(product_id=mapped_product).update(state=state)

    response = lookup(mapped_product)

    body = assert_error(response, 403, f"product_{state}")
    assert mapped_product in body["detail"]
    assert "Retry-After" not in response


def test_lookup_inactive_unmapped_product_returns_403(world, lookup):
    product_id = imported_product()
    Product.objects.filter(product_id=product_id).update(state=Product.State.DISABLED)

    assert_error(lookup(product_id), 403, "product_disabled")


def test_lookup_unknown_product_returns_404(lookup):
    product_id = new_product_id()

    body = assert_error(lookup(product_id.lower()), 404, "unknown_product")

    # The detail names the canonical form, which is what the vendor imports.
    assert product_id in body["detail"]


def test_lookup_unclaimed_product_returns_409(world, lookup):
    response = lookup(imported_product())

    assert_error(response, 409, "not_claimed")
    assert response["Retry-After"] == str(settings.ZTSP_LOOKUP_RETRY_AFTER)


def test_lookup_allocated_unclaimed_product_returns_409(world, lookup):
    product_id = imported_product()
    allocate_products(world.a.msp, numbered([product_id]), actor=VENDOR)

    response = lookup(product_id)

    assert_error(response, 409, "not_claimed")
    assert response["Retry-After"] == str(settings.ZTSP_LOOKUP_RETRY_AFTER)


def test_lookup_unmapped_product_returns_409(world, lookup):
    response = lookup(claimed_product(world.a))

    assert_error(response, 409, "not_mapped")
    assert response["Retry-After"] == str(settings.ZTSP_LOOKUP_RETRY_AFTER)


def test_lookup_retry_after_follows_setting(world, lookup):
    product_id = imported_product()

    with override_settings(ZTSP_LOOKUP_RETRY_AFTER=45):
        response = lookup(product_id)

    assert response["Retry-After"] == "45"
    assert "45 seconds" in response.json()["detail"]


def test_lookup_get_returns_405(world, public_client):
    response = public_client.get("/api/v1/ztp/lookup", HTTP_AUTHORIZATION=f"Bearer {world.provisioning_key}")

    assert_error(response, 405, "method_not_allowed")


# --- 429 ------------------------------------------------------------------------------------


def product_throttle_key(product_id: str) -> str:
    return ProductThrottle.cache_format % {"scope": ProductThrottle.scope,
                                           "ident": normalize_product_id(product_id)}


@pytest.fixture
def product_rate_two_per_minute():
    """Limit lookups per Product ID to 2 a minute."""
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "ztp_product": "2/min"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        yield


@pytest.fixture
def throttle_history():
    """Delete the product throttle history of the given Product IDs before and after the test.

    Only these keys are deleted: cache.clear() would flush the whole Redis
    database, which other test runs share for their caches and Celery queues.
    """
    product_ids: list[str] = []

    def forget(*ids: str) -> None:
        product_ids.extend(ids)
        cache.delete_many([product_throttle_key(product_id) for product_id in ids])

    yield forget
    cache.delete_many([product_throttle_key(product_id) for product_id in product_ids])


@pytest.mark.usefixtures("product_rate_two_per_minute")
def test_lookup_throttled_returns_429(lookup, mapped_product, throttle_history):
    throttle_history(mapped_product)

    statuses = [lookup(mapped_product).status_code for _ in range(2)]
    response = lookup(mapped_product)

    assert statuses == [200, 200]
    assert_error(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60


@pytest.mark.usefixtures("product_rate_two_per_minute")
def test_lookup_throttle_ignores_rejected_keys(lookup, mapped_product, throttle_history):
    throttle_history(mapped_product)

    statuses = [lookup(mapped_product, key="garbage").status_code for _ in range(2)]
    response = lookup(mapped_product)

    assert statuses == [401, 401]
    assert response.status_code == 200, response.content


@pytest.mark.usefixtures("product_rate_two_per_minute")
def test_lookup_throttle_is_per_product(lookup, mapped_product, throttle_history):
    other = new_product_id()
    throttle_history(mapped_product, other)
    for _ in range(2):
        lookup(mapped_product)

    assert lookup(mapped_product).status_code == 429
    assert lookup(other).status_code == 404


@pytest.mark.usefixtures("product_rate_two_per_minute")
def test_lookup_throttle_counts_braced_form(lookup, mapped_product, throttle_history):
    model, uuid_text = mapped_product.split(":")
    braced = f"{model}:{{{uuid_text}}}"
    throttle_history(mapped_product, braced)
    for _ in range(2):
        lookup(mapped_product)

    assert lookup(braced).status_code == 429


# --- last-seen fields -----------------------------------------------------------------------


def test_lookup_records_last_seen(lookup, mapped_product):
    facts = {"model": "EC100", "firmware": "2.4.1", "macs": ["00:11:22:33:44:55"]}
    before = timezone.now()

    lookup(mapped_product, facts=facts)

    seen = product(mapped_product)
    assert before <= seen.last_lookup_at <= timezone.now()
    assert seen.last_lookup_address == "127.0.0.1"
    assert seen.last_facts == facts


def test_lookup_records_last_seen_for_unmapped_product(world, lookup):
    product_id = claimed_product(world.a)

    lookup(product_id, facts={"firmware": "1.0"})

    seen = product(product_id)
    assert seen.last_lookup_at is not None
    assert seen.last_facts == {"firmware": "1.0"}


def test_lookup_records_last_seen_with_other_form(lookup, mapped_product):
    lookup(mapped_product.lower(), facts={"firmware": "1.0"})

    assert product(mapped_product).last_facts == {"firmware": "1.0"}


def test_lookup_without_facts_keeps_last_facts(lookup, mapped_product):
    Product.objects.filter(product_id=mapped_product).update(
        last_facts={"firmware": "1.0"}, last_lookup_at=timezone.now() - timedelta(minutes=5))

    lookup(mapped_product)

    seen = product(mapped_product)
    assert seen.last_facts == {"firmware": "1.0"}
    assert seen.last_lookup_at > timezone.now() - timedelta(minutes=1)


def test_lookup_repeat_within_interval_skips_write(lookup, mapped_product):
    recent = timezone.now() - timedelta(seconds=10)
    Product.objects.filter(product_id=mapped_product).update(
        last_lookup_at=recent, last_lookup_address="127.0.0.1", last_facts={"firmware": "1.0"})

    lookup(mapped_product, facts={"firmware": "1.0"})

    assert product(mapped_product).last_lookup_at == recent


def test_lookup_changed_facts_written_within_interval(lookup, mapped_product):
    recent = timezone.now() - timedelta(seconds=10)
    Product.objects.filter(product_id=mapped_product).update(
        last_lookup_at=recent, last_lookup_address="127.0.0.1", last_facts={"firmware": "1.0"})

    lookup(mapped_product, facts={"firmware": "1.1"})

    seen = product(mapped_product)
    assert seen.last_facts == {"firmware": "1.1"}
    assert seen.last_lookup_at > recent


def test_lookup_new_address_written_within_interval(world, mapped_product):
    from rest_framework.test import APIClient

    recent = timezone.now() - timedelta(seconds=10)
    Product.objects.filter(product_id=mapped_product).update(last_lookup_at=recent,
                                                             last_lookup_address="127.0.0.2")
    client = APIClient(HTTP_HOST="localhost", REMOTE_ADDR="127.0.0.3")

    post_lookup(client, {"product_id": mapped_product}, key=world.provisioning_key)

    assert product(mapped_product).last_lookup_address == "127.0.0.3"


# --- logging --------------------------------------------------------------------------------


def logged_text(records) -> str:
    """Return everything the records could put in a log line: message, arguments and traceback."""
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def key_secret(key: str) -> str:
    """Return the secret part of a ``<prefix>_<id>_<secret>`` key."""
    return key.split("_", 3)[3]


def test_lookup_logs_no_secret(world, lookup, mapped_product, caplog):
    caplog.set_level(logging.DEBUG)

    response = lookup(mapped_product, facts={"firmware": "2.4.1"})

    assert response.status_code == 200
    assert caplog.records, "the lookup logged nothing, so the check below proves nothing"
    text = logged_text(caplog.records)
    for secret in (world.provisioning_key, key_secret(world.provisioning_key),
                   world.a.tenant_access_key, key_secret(world.a.tenant_access_key)):
        assert secret not in text


@pytest.mark.parametrize("stage", ["unknown", "unclaimed", "unmapped", "disabled", "malformed"])
def test_lookup_error_logs_no_secret(world, lookup, caplog, stage):
    product_id = {
        "unknown": new_product_id,
        "unclaimed": imported_product,
        "unmapped": lambda: claimed_product(world.a),
        "disabled": lambda: provision_products(world.a.msp, world.a.registration)[0],
        "malformed": lambda: "EC100",
    }[stage]()
    if stage == "disabled":
        Product.objects.filter(product_id=product_id).update(state=Product.State.DISABLED)
    caplog.set_level(logging.DEBUG)

    response = lookup(product_id)

    assert response.status_code >= 400
    text = logged_text(caplog.records)
    assert world.provisioning_key not in text
    assert key_secret(world.provisioning_key) not in text


def test_lookup_rejected_key_not_logged(lookup, mapped_product, caplog):
    presented = "ztsp_pk_0123456789ab_" + "S3cretPart" * 4
    caplog.set_level(logging.DEBUG)

    response = lookup(mapped_product, key=presented)

    assert response.status_code == 401
    assert "S3cretPart" not in logged_text(caplog.records)
