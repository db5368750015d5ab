"""Helpers for the provisioning tests: products at each stage and ZTP lookup requests."""

from __future__ import annotations

import io
import json

from rest_framework.test import APIClient

from tests.factories import VENDOR, new_product_id

LOOKUP_URL = "/api/v1/ztp/lookup"


def csv_bytes(*lines: str, line_end: str = "\n", encoding: str = "utf-8") -> bytes:
    return line_end.join(lines).encode(encoding)


def import_csv(data: bytes, **options):
    from provisioning.services.importing import import_products

    return import_products(io.BytesIO(data), actor=VENDOR, **options)


def imported_product(model: str = "EC100") -> str:
    """Import one new product that no MSP has claimed, and return its Product ID."""
    product_id = new_product_id(model)
    report = import_csv(csv_bytes(product_id))
    assert report.inserted == 1, report.summary()
    return product_id


def claimed_product(persona) -> str:
    """Import, allocate and claim one new product for ``persona``'s MSP without mapping it."""
    from msp.services.products import allocate_products, claim_products, numbered

    product_id = imported_product()
    allocate_products(persona.msp, numbered([product_id]), actor=VENDOR)
    claim_products(persona.msp, numbered([product_id]), actor=VENDOR)
    return product_id


def post_lookup(client: APIClient, body, *, key: str | None, content_type: str = "application/json"):
    """POST ``body`` (a dict or list is sent as JSON, str/bytes as is) with ``key`` as the bearer token."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key is not None else {}
    data = json.dumps(body) if isinstance(body, dict | list) else body
    return client.post(LOOKUP_URL, data=data, content_type=content_type, **headers)


def public_key_pem() -> str:
    """Return the PEM (SubjectPublicKeyInfo) of a new P-256 public key, as the import stores it."""
    from cryptography.hazmat.primitives import serialization

    from tests.factories import make_key

    key = make_key().public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
