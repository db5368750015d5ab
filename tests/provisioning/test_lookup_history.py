"""Recording ZTP lookup outcomes: one row per product and outcome a minute, unknown IDs capped per address."""

from __future__ import annotations

import logging
import random
import threading

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from common import tokens
from msp.services.products import map_products_to_tenant, numbered
from provisioning.models import LookupEvent, Product
from provisioning.services import lookup_history
from provisioning.services.access_keys import ACCESS_KEY_PREFIX
from provisioning.services.lookup_history import outcome_cache_key, record_lookup_event
from tests.factories import VENDOR, new_product_id, provision_products
from tests.msp.conftest import row_text
from tests.provisioning.helpers import claimed_product, imported_product, post_lookup


@pytest.fixture
def address() -> str:
    """A loopback address of this test's own, so the per-address cap of other tests does not count."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"  # noqa: S311


@pytest.fixture
def lookup_from(world):
    """Return a function that sends a ZTP lookup from a given client address."""

    def send(product_id: str, address: str, *, key: str = world.provisioning_key):
        client = APIClient(HTTP_HOST="localhost", REMOTE_ADDR=address)
        return post_lookup(client, {"product_id": product_id}, key=key)

    return send


@pytest.fixture
def fixed_minute(monkeypatch):
    """Count the per-address cap in one minute of this test's own, even if the test crosses a minute boundary."""
    minute = random.randint(10**9, 2 * 10**9)  # noqa: S311
    monkeypatch.setattr(lookup_history, "_current_minute", lambda: minute)


def events(product_id: str) -> list[LookupEvent]:
    return list(LookupEvent.objects.filter(product_id=product_id).order_by("-at", "-id"))


def test_lookup_records_event(world, lookup_from, address):
    [product_id] = provision_products(world.a.msp, world.a.registration)

    assert lookup_from(product_id, address).status_code == 200

    [event] = events(product_id)
    assert event.status == 200
    assert event.code == "ok"
    assert event.access_key_id == tokens.split_key(ACCESS_KEY_PREFIX, world.provisioning_key)
    assert event.source_address == address
    assert event.at is not None


def test_lookup_records_canonical_id(world, lookup_from, address):
    [product_id] = provision_products(world.a.msp, world.a.registration)

    lookup_from(product_id.lower(), address)

    assert len(events(product_id)) == 1


def test_repeat_within_minute_writes_one_row(world, lookup_from, address):
    [product_id] = provision_products(world.a.msp, world.a.registration)

    statuses = [lookup_from(product_id, address).status_code for _ in range(2)]

    assert statuses == [200, 200]
    assert len(events(product_id)) == 1


def test_repeat_from_other_address_writes_one_row(world, lookup_from):
    product_id = claimed_product(world.a)

    lookup_from(product_id, "127.0.0.2")
    lookup_from(product_id, "127.0.0.3")

    assert len(events(product_id)) == 1


def test_other_outcome_writes_second_row(world, lookup_from, address):
    product_id = claimed_product(world.a)
    assert lookup_from(product_id, address).status_code == 409

    map_products_to_tenant(world.a.msp, world.a.registration, numbered([product_id]), actor=VENDOR)
    assert lookup_from(product_id, address).status_code == 200

    assert [(event.status, event.code) for event in events(product_id)] == [(200, "ok"), (409, "not_mapped")]


def test_same_outcome_after_interval_writes_again(world, lookup_from, address):
    product_id = claimed_product(world.a)
    lookup_from(product_id, address)

    # What the expiry of the marker does after EVENT_INTERVAL_SECONDS.
    cache.delete(outcome_cache_key(product_id, 409, "not_mapped"))
    lookup_from(product_id, address)

    assert len(events(product_id)) == 2


@pytest.mark.parametrize(("stage", "status", "code"), [
    ("unclaimed", 409, "not_claimed"),
    ("unmapped", 409, "not_mapped"),
    ("disabled", 403, "product_disabled"),
    ("unknown", 404, "unknown_product"),
])
def test_lookup_records_each_outcome(world, lookup_from, address, stage, status, code):
    product_id = {
        "unclaimed": imported_product,
        "unmapped": lambda: claimed_product(world.a),
        "disabled": lambda: provision_products(world.a.msp, world.a.registration)[0],
        "unknown": new_product_id,
    }[stage]()
    if stage == "disabled":
        Product.objects.filter(product_id=product_id).update(state=Product.State.DISABLED)

    assert lookup_from(product_id, address).status_code == status

    [event] = events(product_id)
    assert (event.status, event.code) == (status, code)


def test_malformed_id_recorded_as_sent(world, lookup_from, address):
    presented = f"EC100-{random.randint(0, 10**9)}"  # noqa: S311

    assert lookup_from(presented, address).status_code == 400

    [event] = events(presented)
    assert (event.status, event.code) == (400, "invalid_product_id")
    assert event.source_address == address


def test_rejected_access_key_not_recorded(world, lookup_from, address):
    [product_id] = provision_products(world.a.msp, world.a.registration)

    assert lookup_from(product_id, address, key="garbage").status_code == 401

    assert events(product_id) == []


@pytest.mark.usefixtures("fixed_minute")
def test_unknown_ids_capped_per_address(world, lookup_from, address, monkeypatch):
    monkeypatch.setattr(lookup_history, "UNKNOWN_EVENTS_PER_ADDRESS", 3)
    unknown = [new_product_id() for _ in range(5)]

    statuses = [lookup_from(product_id, address).status_code for product_id in unknown]

    assert statuses == [404] * 5
    assert LookupEvent.objects.filter(product_id__in=unknown).count() == 3


@pytest.mark.usefixtures("fixed_minute")
def test_malformed_ids_share_unknown_cap(world, lookup_from, address, monkeypatch):
    monkeypatch.setattr(lookup_history, "UNKNOWN_EVENTS_PER_ADDRESS", 2)
    presented = [f"EC100-{random.randint(0, 10**9)}" for _ in range(2)]  # noqa: S311
    unknown = new_product_id()

    for value in [*presented, unknown]:
        lookup_from(value, address)

    assert LookupEvent.objects.filter(product_id__in=presented).count() == 2
    assert events(unknown) == []


@pytest.mark.usefixtures("fixed_minute")
def test_unknown_cap_is_per_address(world, lookup_from, address, monkeypatch):
    monkeypatch.setattr(lookup_history, "UNKNOWN_EVENTS_PER_ADDRESS", 1)
    first, second = new_product_id(), new_product_id()
    lookup_from(first, address)

    lookup_from(second, "127.0.0.2")

    assert len(events(first)) == 1
    assert len(events(second)) == 1


@pytest.mark.usefixtures("fixed_minute")
def test_known_products_not_capped(world, lookup_from, address, monkeypatch):
    monkeypatch.setattr(lookup_history, "UNKNOWN_EVENTS_PER_ADDRESS", 1)
    product_ids = [claimed_product(world.a) for _ in range(3)]

    for product_id in product_ids:
        lookup_from(product_id, address)

    assert LookupEvent.objects.filter(product_id__in=product_ids).count() == 3


@pytest.mark.usefixtures("fixed_minute")
def test_unknown_cap_warns_once(world, lookup_from, address, monkeypatch, caplog):
    monkeypatch.setattr(lookup_history, "UNKNOWN_EVENTS_PER_ADDRESS", 1)
    caplog.set_level(logging.WARNING, logger=lookup_history.__name__)

    for _ in range(4):
        lookup_from(new_product_id(), address)

    warnings = [record for record in caplog.records if record.name == lookup_history.__name__]
    assert len(warnings) == 1
    assert address in warnings[0].getMessage()


def test_concurrent_same_outcome_writes_once(monkeypatch):
    # Only the cache decides here: the insert is replaced, so the threads need no database.
    written = []
    monkeypatch.setattr(LookupEvent.objects, "create", lambda **fields: written.append(fields))
    product_id = new_product_id()
    start = threading.Barrier(12)
    results = []

    def record() -> None:
        start.wait()
        results.append(record_lookup_event(product_id, access_key_id="0123456789ab", status=409,
                                           code="not_mapped", source_address="127.0.0.1", known_product=True))

    threads = [threading.Thread(target=record) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 11 + [True]
    assert len(written) == 1


def test_invalid_source_address_stored_as_null(world):
    product_id = new_product_id()

    written = record_lookup_event(product_id, access_key_id="0123456789ab", status=409, code="not_mapped",
                                  source_address="not-an-address", known_product=True)

    assert written is True
    assert events(product_id)[0].source_address is None


def test_long_malformed_id_cut_to_column(world):
    presented = "X" * 300

    record_lookup_event(presented, access_key_id="0123456789ab", status=400, code="invalid_product_id",
                        source_address="127.0.0.1", known_product=False)

    assert LookupEvent.objects.filter(product_id="X" * 128).exists()


def test_event_rows_hold_no_keys(world, lookup_from, address):
    [product_id] = provision_products(world.a.msp, world.a.registration)
    lookup_from(product_id, address)

    [event] = events(product_id)
    text = row_text(LookupEvent._meta.db_table, event.pk)
    assert world.provisioning_key not in text
    assert world.provisioning_key.split("_", 3)[3] not in text
    assert world.a.tenant_access_key not in text
    assert world.a.tenant_access_key.split("_", 3)[3] not in text
