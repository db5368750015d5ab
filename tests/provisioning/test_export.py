"""Tests for exporting products as a manufacturing CSV: the service and the ``export_products`` command."""

from __future__ import annotations

import csv
import io
import sys
import uuid

import pytest
from django.core.management import CommandError, call_command

from msp.services.accounts import create_msp
from provisioning.models import Product
from provisioning.services.exporting import export_products
from tests.factories import VENDOR, new_product_id
from tests.provisioning.helpers import csv_bytes, import_csv, public_key_pem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("world")]

HEADER = b"product_id,serial,public_key,secret_sha256\n"
SECRET_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def msp():
    """A new MSP with no products, so an export filtered by it lists only the test's products."""
    suffix = uuid.uuid4().hex[:8]
    return create_msp(f"Export {suffix}", slug=f"export-{suffix}", actor=VENDOR)


def unique_model() -> str:
    return f"X{uuid.uuid4().hex[:8].upper()}"


def one_line(pem: str) -> str:
    return pem.strip().replace("\n", "\\n")


def export(**filters) -> tuple[bytes, int]:
    output = io.BytesIO()
    count = export_products(output, **filters)
    return output.getvalue(), count


def exported_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))[1:]


def exported_ids(data: bytes) -> set[str]:
    return {row[0] for row in exported_rows(data)}


def canonical(product_id: str) -> str:
    model, uuid_text = product_id.split(":", 1)
    return f"{model.upper()}:{uuid_text}"


# --- the service ----------------------------------------------------------------------------


def test_export_header_and_rows(msp):
    pem = public_key_pem()
    with_key, with_secret, bare = new_product_id(), new_product_id(), new_product_id()
    import_csv(csv_bytes("product_id,serial,public_key,secret_sha256",
                         f"{with_key},S1,{one_line(pem)},",
                         f"{with_secret},S2,,{SECRET_HASH}",
                         f"{bare},,,"), allocate_to=msp)

    data, count = export(msp=msp)

    assert data.startswith(HEADER)
    assert count == 3
    # NOTE: the export is ordered by id, and the import's INSERT ... SELECT
    # assigns ids in no guaranteed order, so rows are compared as a set.
    assert sorted(exported_rows(data)) == sorted([
        [with_key, "S1", pem, ""],
        [with_secret, "S2", "", ""],
        [bare, "", "", ""],
    ])


def test_export_writes_secret_hash_only_when_asked(msp):
    product_id = new_product_id()
    import_csv(csv_bytes("product_id,serial,public_key,secret_sha256", f"{product_id},S2,,{SECRET_HASH}"),
               allocate_to=msp)

    default, _count = export(msp=msp)
    asked, _count = export(msp=msp, include_secret_hashes=True)

    assert SECRET_HASH.encode() not in default
    assert exported_rows(asked) == [[product_id, "S2", "", SECRET_HASH]]


def test_export_quotes_pem_across_lines(msp):
    pem = public_key_pem()
    product_id = new_product_id()
    import_csv(csv_bytes("product_id,public_key", f"{product_id},{one_line(pem)}"), allocate_to=msp)

    data, count = export(msp=msp)

    assert f'"{pem}"'.encode() in data
    # The count is of products, not of the lines the PEM spans.
    assert count == 1


def test_export_unfiltered_counts_all():
    product_ids = [new_product_id(), new_product_id()]
    import_csv(csv_bytes(*product_ids))

    data, count = export()

    assert count == Product.objects.count()
    assert set(product_ids) <= exported_ids(data)


def test_export_filters_by_msp(msp, world):
    mine, other, unallocated = new_product_id(), new_product_id(), new_product_id()
    import_csv(csv_bytes(mine), allocate_to=msp)
    import_csv(csv_bytes(other), allocate_to=world.b.msp)
    import_csv(csv_bytes(unallocated))

    data, count = export(msp=msp)

    assert exported_ids(data) == {mine}
    assert count == 1


def test_export_filters_by_state():
    active, disabled = new_product_id(), new_product_id()
    import_csv(csv_bytes(active, disabled))
    Product.objects.filter(product_id=disabled).update(state=Product.State.DISABLED)

    data, count = export(state=Product.State.DISABLED)

    ids = exported_ids(data)
    assert disabled in ids
    assert active not in ids
    assert ids == set(Product.objects.filter(state=Product.State.DISABLED).values_list("product_id", flat=True))
    assert count == len(ids)


def test_export_filters_by_model_any_case():
    model = unique_model()
    matching = [new_product_id(model), new_product_id(model.lower())]
    import_csv(csv_bytes(*matching, new_product_id()))

    data, count = export(model_number=model.lower())

    assert exported_ids(data) == {canonical(product_id) for product_id in matching}
    assert count == 2


def test_export_combined_filters(msp):
    model = unique_model()
    matching, other_model = new_product_id(model), new_product_id()
    import_csv(csv_bytes(matching, other_model), allocate_to=msp)

    data, count = export(msp=msp, state=Product.State.ACTIVE, model_number=model)

    assert exported_ids(data) == {matching}
    assert count == 1


def test_export_empty_has_header_only(msp):
    data, count = export(msp=msp)

    assert data == HEADER
    assert count == 0


def test_export_reimport_all_present(msp):
    import_csv(csv_bytes("product_id,serial,public_key,secret_sha256",
                         f"{new_product_id()},S1,{one_line(public_key_pem())},",
                         f"{new_product_id()},S2,,{SECRET_HASH}",
                         f"{new_product_id()},,,"), allocate_to=msp)
    data, count = export(msp=msp)

    report = import_csv(data)

    assert report.rows == count == 3
    assert report.inserted == 0
    assert report.unchanged == 3
    assert report.rejected == []


# --- the export_products command ------------------------------------------------------------


def test_command_writes_output_file(msp, tmp_path):
    product_id = new_product_id()
    import_csv(csv_bytes(product_id), allocate_to=msp)
    path = tmp_path / "export.csv"
    stderr = io.StringIO()

    call_command("export_products", "--msp", msp.slug, "--output", str(path), stderr=stderr)

    assert path.read_bytes() == HEADER + f"{product_id},\"\",\"\",\"\"\n".encode()
    assert "Exported 1 products." in stderr.getvalue()


def test_command_writes_standard_output(msp, monkeypatch):
    product_id = new_product_id()
    import_csv(csv_bytes(product_id), allocate_to=msp)
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)

    call_command("export_products", "--msp", msp.slug, stderr=io.StringIO())

    data = stdout.buffer.getvalue()
    assert data.startswith(HEADER)
    assert exported_ids(data) == {product_id}


def test_command_filters_by_model_and_state(msp, tmp_path):
    model = unique_model()
    matching = new_product_id(model)
    import_csv(csv_bytes(matching, new_product_id()), allocate_to=msp)
    path = tmp_path / "export.csv"

    call_command("export_products", "--msp", msp.slug, "--model", model.lower(), "--state", "active",
                 "--output", str(path), stderr=io.StringIO())

    assert exported_ids(path.read_bytes()) == {matching}


def test_command_unknown_msp_raises(tmp_path):
    path = tmp_path / "export.csv"

    with pytest.raises(CommandError, match="no-such-msp"):
        call_command("export_products", "--msp", "no-such-msp", "--output", str(path), stderr=io.StringIO())

    assert not path.exists()


def test_command_secret_hashes_flag_warns(msp, tmp_path):
    product_id = new_product_id()
    import_csv(csv_bytes("product_id,serial,public_key,secret_sha256", f"{product_id},S2,,{SECRET_HASH}"),
               allocate_to=msp)
    path = tmp_path / "export.csv"
    stderr = io.StringIO()

    call_command("export_products", "--msp", msp.slug, "--output", str(path), "--include-secret-hashes",
                 stderr=stderr)

    assert SECRET_HASH.encode() in path.read_bytes()
    assert "keep it as secret" in stderr.getvalue()
