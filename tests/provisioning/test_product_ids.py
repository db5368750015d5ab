"""Tests for provisioning.product_ids: the canonical form and every rejected shape."""

from __future__ import annotations

import uuid

import pytest

from provisioning.product_ids import (
    MAX_PRODUCT_ID_LENGTH,
    InvalidProductId,
    ProductId,
    normalize_product_id,
    parse_product_id,
)

UUID_TEXT = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
CANONICAL = f"EC100:{UUID_TEXT}"


@pytest.mark.parametrize(
    "raw",
    [
        CANONICAL,
        f"ec100:{UUID_TEXT}",
        f"Ec100:{UUID_TEXT.upper()}",
        f"EC100:{{{UUID_TEXT}}}",
        f"ec100:{{{UUID_TEXT.upper()}}}",
        f"  EC100:{UUID_TEXT}  ",
        f"\tEC100 : {UUID_TEXT}\r\n",
        f"EC100:{{ {UUID_TEXT} }}",
    ],
)
def test_parse_variants_give_canonical_id(raw):
    assert normalize_product_id(raw) == CANONICAL


def test_parse_returns_upper_model_and_uuid():
    parsed = parse_product_id(f"ec-100.b_2:{UUID_TEXT.upper()}")

    assert parsed == ProductId(model_number="EC-100.B_2", uuid=uuid.UUID(UUID_TEXT))
    assert str(parsed) == f"EC-100.B_2:{UUID_TEXT}"


def test_parse_accepts_32_character_model():
    model = "A" * 32

    assert parse_product_id(f"{model}:{UUID_TEXT}").model_number == model


@pytest.mark.parametrize(
    ("raw", "reason_fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (f"EC100{UUID_TEXT}", "missing ':'"),
        (f"EC100;{UUID_TEXT}", "missing ':'"),
        (f":{UUID_TEXT}", "model number must be"),
        (f"-EC100:{UUID_TEXT}", "model number must be"),
        (f"EC 100:{UUID_TEXT}", "model number must be"),
        (f"EC/100:{UUID_TEXT}", "model number must be"),
        (f"EC100é:{UUID_TEXT}", "model number must be"),
        (f"{'A' * 33}:{UUID_TEXT}", "model number must be"),
        ("EC100:", "UUID part is not a hyphenated UUID"),
        ("EC100:not-a-uuid", "UUID part is not a hyphenated UUID"),
        ("EC100:7c9e6679-7425-40de-944b-e07fc1f90ae", "UUID part is not a hyphenated UUID"),
        ("EC100:7c9e6679-7425-40de-944b-e07fc1f90aeg", "UUID part is not a hyphenated UUID"),
        ("EC100:7c9e6679742540de944be07fc1f90ae7", "UUID part is not a hyphenated UUID"),
        (f"EC100:urn:uuid:{UUID_TEXT}", "UUID part is not a hyphenated UUID"),
        (f"EC100:{{{UUID_TEXT}", "UUID part is not a hyphenated UUID"),
        (f"EC100:{UUID_TEXT}}}", "UUID part is not a hyphenated UUID"),
        (f"EC100:{UUID_TEXT}:extra", "UUID part is not a hyphenated UUID"),
        ("EC100:" + "0" * MAX_PRODUCT_ID_LENGTH, "longer than 128 characters"),
    ],
)
def test_parse_rejects_malformed_id(raw, reason_fragment):
    with pytest.raises(InvalidProductId) as raised:
        parse_product_id(raw)

    assert reason_fragment in raised.value.reason
    assert reason_fragment in str(raised.value)


def test_parse_rejects_id_one_over_max_length():
    raw = "A" * (MAX_PRODUCT_ID_LENGTH + 1)

    with pytest.raises(InvalidProductId) as raised:
        parse_product_id(raw)

    assert raised.value.reason == "longer than 128 characters"


def test_parse_long_id_error_shortens_value():
    raw = "EC100:" + "a" * 500

    with pytest.raises(InvalidProductId) as raised:
        parse_product_id(raw)

    # The message quotes the first 40 characters, not the whole input.
    assert len(raised.value.value) == 43
    assert raised.value.value.endswith("...")


@pytest.mark.parametrize("value", [None, 42, b"EC100:" + UUID_TEXT.encode()])
def test_parse_rejects_non_string(value):
    with pytest.raises(InvalidProductId) as raised:
        parse_product_id(value)

    assert "expected a string" in raised.value.reason


def test_invalid_product_id_is_value_error():
    with pytest.raises(ValueError, match="invalid Product ID 'EC100'"):
        parse_product_id("EC100")
