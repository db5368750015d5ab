"""Parsing and normalising Product IDs (``ModelNo:UUID``).

The one place that decides what a valid Product ID is: the CSV import, the
MSP API, the ZTP lookup, CSR checks and the admin all call :func:`parse_product_id`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

# Model numbers are letters, digits, '.', '_' or '-', starting with a letter or
# digit, at most 32 characters. They are compared upper-cased.
MODEL_NUMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
MAX_PRODUCT_ID_LENGTH = 128
_HEX_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# The whole grammar in one expression, for the bulk import's hot path. It
# accepts exactly what parse_product_id accepts step by step (the tests check
# both agree); the step-by-step parser also explains a rejection.
PRODUCT_ID_RE = re.compile(
    rf"\s*([A-Za-z0-9][A-Za-z0-9._-]{{0,31}})\s*:\s*(?:\{{\s*({_HEX_UUID})\s*\}}|({_HEX_UUID}))\s*"
)


class InvalidProductId(ValueError):
    def __init__(self, value: str, reason: str):
        self.value = value
        self.reason = reason
        super().__init__(f"invalid Product ID {value!r}: {reason}")


@dataclass(frozen=True)
class ProductId:
    model_number: str
    uuid: uuid.UUID

    def __str__(self) -> str:
        return f"{self.model_number}:{self.uuid}"


def parse_product_id(value: str) -> ProductId:
    """Parse ``value`` into its canonical form or raise :class:`InvalidProductId`.

    Canonical form: the model number upper-cased and the UUID in lower-case
    hyphenated form, so ``ec100:{7C9E6679-...}`` and ``EC100:7c9e6679-...``
    are the same product. Surrounding spaces are ignored.
    """
    model, uuid_text = canonical_parts(value)
    return ProductId(model_number=model, uuid=uuid.UUID(uuid_text))


def canonical_parts(value: str) -> tuple[str, str]:
    """Return (upper-case model number, lower-case UUID text) of ``value``, or raise :class:`InvalidProductId`.

    The cheap form of :func:`parse_product_id` for millions of rows: no UUID
    object is built.
    """
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= MAX_PRODUCT_ID_LENGTH:
            match = PRODUCT_ID_RE.fullmatch(text)
            if match:
                return match.group(1).upper(), (match.group(2) or match.group(3)).lower()
    _explain_rejection(value)
    raise AssertionError("unreachable: _explain_rejection always raises")


def _explain_rejection(value) -> None:
    """Raise :class:`InvalidProductId` with the first rule that ``value`` breaks."""
    if not isinstance(value, str):
        raise InvalidProductId(str(value), "expected a string like 'EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7'")
    text = value.strip()
    if not text:
        raise InvalidProductId(value, "empty")
    if len(text) > MAX_PRODUCT_ID_LENGTH:
        raise InvalidProductId(value[:40] + "...", f"longer than {MAX_PRODUCT_ID_LENGTH} characters")
    model, separator, uuid_text = text.partition(":")
    if not separator:
        raise InvalidProductId(value, "missing ':' between model number and UUID (expected ModelNo:UUID)")
    model = model.strip()
    uuid_text = uuid_text.strip()
    if not MODEL_NUMBER_RE.match(model):
        raise InvalidProductId(
            value, "model number must be 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if uuid_text.startswith("{") and uuid_text.endswith("}"):
        uuid_text = uuid_text[1:-1].strip()
    # uuid.UUID also accepts "urn:uuid:" prefixes and 32 bare hex digits; only
    # the hyphenated 8-4-4-4-12 form is a Product ID.
    if not re.fullmatch(_HEX_UUID, uuid_text):
        raise InvalidProductId(value, "UUID part is not a hyphenated UUID like 7c9e6679-7425-40de-944b-e07fc1f90ae7")
    raise InvalidProductId(value, "not of the form ModelNo:UUID")


def normalize_product_id(value: str) -> str:
    model, uuid_text = canonical_parts(value)
    return f"{model}:{uuid_text}"
