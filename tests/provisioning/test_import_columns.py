"""Tests for the optional columns of a manufacturing CSV, the model catalogue, the header and Product IDs."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from provisioning.models import CredentialType, ImportBatch, Product, ProductModel
from provisioning.product_ids import PRODUCT_ID_RE, InvalidProductId, canonical_parts, parse_product_id
from provisioning.services.importing import ImportFileError
from tests.factories import new_product_id
from tests.provisioning.helpers import csv_bytes, import_csv, public_key_pem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("world")]

SECRET_HASH = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
# A SubjectPublicKeyInfo of an EC key on secp112r1, which OpenSSL generates
# but the cryptography package does not load.
UNSUPPORTED_CURVE_KEY = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MDIwEAYHKoZIzj0CAQYFK4EEAAYDHgAET47gZxSgDijuRn+QM1MKtQ10eHBEvZgr\n"
    "8NiOsw==\n"
    "-----END PUBLIC KEY-----\n"
)


def product_of(product_id: str) -> Product:
    return Product.objects.get(uuid=product_id.split(":", 1)[1])


def is_stored(product_id: str) -> bool:
    return Product.objects.filter(uuid=product_id.split(":", 1)[1]).exists()


def rejected_lines(report) -> dict[int, str]:
    return {row.line: row.reason for row in report.rejected}


# --- serial number and credentials ----------------------------------------------------------


def test_serial_stored():
    product_id = new_product_id()

    report = import_csv(csv_bytes("product_id,serial", f"{product_id},SN-0001"))

    assert report.inserted == 1
    assert product_of(product_id).serial_number == "SN-0001"


def test_serial_too_long_rejected():
    product_id = new_product_id()

    report = import_csv(csv_bytes("product_id,serial", f"{product_id},{'S' * 65}"))

    assert rejected_lines(report) == {2: "serial number longer than 64 characters"}
    assert not is_stored(product_id)


def test_public_key_pem_multiline_cell():
    product_id, pem = new_product_id(), public_key_pem()
    # The quoted cell spans the PEM's own lines, as a spreadsheet writes it.
    data = f'product_id,public_key\n{product_id},"{pem}"\n'.encode()

    report = import_csv(data)

    assert report.rejected == []
    assert report.inserted == 1
    product = product_of(product_id)
    assert product.credential_type == CredentialType.PUBLIC_KEY
    assert product.credential == pem


def test_public_key_pem_escaped_newlines():
    product_id, pem = new_product_id(), public_key_pem()
    escaped = pem.strip().replace("\n", "\\n")
    assert "\n" not in escaped

    report = import_csv(csv_bytes("product_id,public_key", f"{product_id},{escaped}"))

    assert report.rejected == []
    product = product_of(product_id)
    assert product.credential_type == CredentialType.PUBLIC_KEY
    assert product.credential == pem


def test_public_key_base64_der_stored_as_pem():
    product_id, pem = new_product_id(), public_key_pem()
    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    report = import_csv(csv_bytes("product_id,public_key", f"{product_id},{base64.b64encode(der).decode()}"))

    assert report.rejected == []
    product = product_of(product_id)
    assert product.credential_type == CredentialType.PUBLIC_KEY
    assert product.credential == pem


@pytest.mark.parametrize("value", [
    "not-a-key",
    "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----",
    base64.b64encode(b"not DER at all").decode(),
])
def test_public_key_invalid_rejected_per_row(value):
    bad, good = new_product_id(), new_product_id()

    report = import_csv(csv_bytes("product_id,public_key", f"{bad},{value}", f"{good},"))

    assert rejected_lines(report) == {2: "public key is neither a PEM nor a base64 DER public key"}
    assert report.inserted == 1
    assert not is_stored(bad)
    assert is_stored(good)


def test_public_key_unsupported_curve_rejected_per_row():
    bad, good = new_product_id(), new_product_id()
    data = f'product_id,public_key\n{bad},"{UNSUPPORTED_CURVE_KEY}"\n{good},\n'.encode()

    report = import_csv(data)

    assert report.rejected_count == 1
    assert report.inserted == 1
    assert is_stored(good)


def test_secret_sha256_stored_lower_case():
    product_id = new_product_id()

    report = import_csv(csv_bytes("product_id,secret_sha256", f"{product_id},{SECRET_HASH}"))

    assert report.rejected == []
    product = product_of(product_id)
    assert product.credential_type == CredentialType.SECRET_SHA256
    assert product.credential == SECRET_HASH.lower()


@pytest.mark.parametrize("value", [SECRET_HASH[:-1], SECRET_HASH + "0", "g" * 64])
def test_secret_sha256_invalid_rejected(value):
    product_id = new_product_id()

    report = import_csv(csv_bytes("product_id,secret_sha256", f"{product_id},{value}"))

    assert rejected_lines(report) == {2: "secret_sha256 is not 64 hexadecimal digits"}
    assert not is_stored(product_id)


def test_both_credentials_rejected():
    product_id = new_product_id()
    escaped = public_key_pem().strip().replace("\n", "\\n")

    report = import_csv(csv_bytes("product_id,public_key,secret_sha256", f"{product_id},{escaped},{SECRET_HASH}"))

    assert list(rejected_lines(report)) == [2]
    assert "both public_key and secret_sha256" in report.rejected[0].reason
    assert not is_stored(product_id)


# --- metadata and the model column ----------------------------------------------------------


def test_extra_columns_stored_as_metadata():
    first, second = new_product_id(), new_product_id()

    report = import_csv(csv_bytes("product_id,Batch,Line Station", f"{first},B7,L2", f"{second},B8,"))

    assert report.rejected == []
    assert product_of(first).metadata == {"batch": "B7", "line station": "L2"}
    # A blank cell adds no key.
    assert product_of(second).metadata == {"batch": "B8"}


def test_metadata_value_too_long_rejected():
    bad, good = new_product_id(), new_product_id()

    report = import_csv(csv_bytes("product_id,batch", f"{bad},{'x' * 257}", f"{good},{'x' * 256}"))

    reasons = rejected_lines(report)
    assert list(reasons) == [2]
    assert "'batch'" in reasons[2]
    assert "256" in reasons[2]
    assert not is_stored(bad)
    assert product_of(good).metadata == {"batch": "x" * 256}


def test_model_column_matching_accepted():
    product_id = new_product_id("EC100")

    report = import_csv(csv_bytes("product_id,model", f"{product_id},ec100"))

    assert report.rejected == []
    assert report.inserted == 1


def test_model_column_mismatch_rejected():
    product_id = new_product_id("EC100")

    report = import_csv(csv_bytes("product_id,model", f"{product_id},EC200"))

    reasons = rejected_lines(report)
    assert list(reasons) == [2]
    assert "EC200" in reasons[2]
    assert "EC100" in reasons[2]
    assert not is_stored(product_id)


# --- the model catalogue --------------------------------------------------------------------


def test_catalogue_empty_accepts_any_model():
    ProductModel.objects.all().delete()
    product_ids = [new_product_id("EC100"), new_product_id("ANY-9")]

    report = import_csv(csv_bytes(*product_ids))

    assert report.rejected == []
    assert report.inserted == 2


def test_catalogue_unknown_model_rejected():
    ProductModel.objects.all().delete()
    ProductModel.objects.create(model_number="EC100")
    ProductModel.objects.create(model_number="EC200")
    known = [new_product_id("EC100"), new_product_id("ec200")]
    unknown = new_product_id("EC999")

    report = import_csv(csv_bytes(known[0], unknown, known[1]))

    reasons = rejected_lines(report)
    assert list(reasons) == [2]
    assert "unknown model EC999" in reasons[2]
    assert report.inserted == 2
    assert all(is_stored(product_id) for product_id in known)
    assert not is_stored(unknown)


def test_catalogue_entry_any_case_matches():
    ProductModel.objects.all().delete()
    ProductModel.objects.create(model_number="ec100")
    product_id = new_product_id("EC100")

    report = import_csv(csv_bytes(product_id))

    assert report.rejected == []
    assert report.inserted == 1


# --- header problems ------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "columns"), [
    ("product_id,serial,Product ID", "columns 1 and 3"),
    ("serial,product_id,sn", "columns 1 and 3"),
    ("product_id,batch,Batch", "columns 2 and 3"),
])
def test_header_duplicate_column_raises(header, columns):
    product_id = new_product_id()
    batches_before = ImportBatch.objects.count()

    with pytest.raises(ImportFileError, match=columns):
        import_csv(csv_bytes(header, f"{product_id},S1,x"))

    assert not is_stored(product_id)
    assert ImportBatch.objects.count() == batches_before


def test_header_too_many_unknown_columns_raises():
    product_id = new_product_id()
    extra = [f"extra{index}" for index in range(21)]

    with pytest.raises(ImportFileError, match="21 unknown columns"):
        import_csv(csv_bytes(",".join(["product_id", *extra]), ",".join([product_id, *["x"] * 21])))

    assert not is_stored(product_id)


def test_header_twenty_unknown_columns_kept():
    product_id = new_product_id()
    extra = [f"extra{index}" for index in range(20)]

    report = import_csv(csv_bytes(",".join(["product_id", *extra]), ",".join([product_id, *["x"] * 20])))

    assert report.inserted == 1
    assert product_of(product_id).metadata == {name: "x" for name in extra}


# --- canonical_parts and parse_product_id agree ---------------------------------------------

UUID_TEXT = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.mark.parametrize("raw", [
    f"EC100:{UUID_TEXT}",
    f"ec100:{UUID_TEXT.upper()}",
    f"Ec100:{{{UUID_TEXT}}}",
    f"EC100:{{ {UUID_TEXT.upper()} }}",
    f"  EC100 : {UUID_TEXT}  ",
    f"\tEC100\t:\t{UUID_TEXT}\t",
    f"EC100:{UUID_TEXT}\r\n",
    f"ec-100.b_2:{UUID_TEXT}",
    f"{'a' * 32}:{UUID_TEXT}",
])
def test_product_id_accepted_spellings_agree(raw):
    model, uuid_text = canonical_parts(raw)

    assert PRODUCT_ID_RE.fullmatch(raw) is not None
    assert str(parse_product_id(raw)) == f"{model}:{uuid_text}"
    assert uuid_text == UUID_TEXT
    assert model == model.upper()


@pytest.mark.parametrize("raw", [
    "",
    "   ",
    "EC100",
    f"EC100{UUID_TEXT}",
    f":{UUID_TEXT}",
    f"-EC100:{UUID_TEXT}",
    f"EC 100:{UUID_TEXT}",
    f"{'A' * 33}:{UUID_TEXT}",
    f"EC100::{UUID_TEXT}",
    f"EC100:{{{UUID_TEXT}",
    f"EC100:{UUID_TEXT}}}",
    f"EC100:{{{{{UUID_TEXT}}}}}",
    f"EC100:urn:uuid:{UUID_TEXT}",
    f"EC100:{UUID_TEXT.replace('-', '')}",
    f"EC100:{UUID_TEXT[:-1]}g",
    f"ÉC100:{UUID_TEXT}",
    f"EC100\uff1a{UUID_TEXT}",
    f"EC100:{UUID_TEXT} extra",
    f"EC100:{' ' * 100}{UUID_TEXT}",
])
def test_product_id_rejected_spellings_agree(raw):
    with pytest.raises(InvalidProductId):
        canonical_parts(raw)
    with pytest.raises(InvalidProductId):
        parse_product_id(raw)


def test_product_id_long_padding_accepted():
    raw = " " * 200 + f"EC100:{UUID_TEXT}" + " " * 200
    assert PRODUCT_ID_RE.fullmatch(raw) is not None

    assert canonical_parts(raw) == ("EC100", UUID_TEXT)

