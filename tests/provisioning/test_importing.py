"""Tests for the manufacturing CSV import: the service and the ``import_products`` command."""

from __future__ import annotations

import io
import re
import sys
import uuid

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from provisioning.models import ImportBatch, Product
from provisioning.services.importing import ImportFileError
from tests.factories import new_product_id
from tests.provisioning.helpers import csv_bytes, import_csv

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("world")]


def stored(*product_ids: str) -> list[str]:
    """Return the canonical Product IDs among ``product_ids`` that exist, in the given order."""
    uuids = [uuid.UUID(product_id.split(":", 1)[1].strip("{} ")) for product_id in product_ids]
    found = dict(Product.objects.filter(uuid__in=uuids).values_list("uuid", "product_id"))
    return [found[value] for value in uuids if value in found]


def rejected_lines(report) -> dict[int, str]:
    return {row.line: row.reason for row in report.rejected}


def run_command(*args) -> str:
    output = io.StringIO()
    call_command("import_products", *args, stdout=output, stderr=io.StringIO())
    return output.getvalue()


# --- file formats ---------------------------------------------------------------------------


def test_import_plain_list_stores_canonical_ids():
    first, second = new_product_id(), new_product_id("ec200")
    model, uuid_text = second.split(":")

    report = import_csv(csv_bytes(first.lower(), f"{model}:{{{uuid_text.upper()}}}"))

    assert report.inserted == 2
    assert report.rejected == []
    assert stored(first, second) == [first, f"EC200:{uuid_text}"]


def test_import_stores_model_and_uuid_columns():
    product_id = new_product_id("ec-300")

    import_csv(csv_bytes(product_id))

    uuid_text = product_id.split(":")[1]
    product = Product.objects.get(product_id=f"EC-300:{uuid_text}")
    assert product.model_number == "EC-300"
    assert str(product.uuid) == uuid_text
    assert product.state == Product.State.ACTIVE
    assert product.msp_id is None


def test_import_utf8_bom():
    product_ids = [new_product_id(), new_product_id()]
    data = b"\xef\xbb\xbf" + csv_bytes("product_id", *product_ids)

    report = import_csv(data)

    assert report.inserted == 2
    assert report.rejected == []
    assert stored(*product_ids) == product_ids


def test_import_utf8_bom_without_header():
    product_id = new_product_id()

    report = import_csv(b"\xef\xbb\xbf" + csv_bytes(product_id))

    assert report.inserted == 1
    assert report.rejected == []


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_import_utf16_with_bom(encoding):
    product_ids = [new_product_id(), new_product_id()]
    bom = "\ufeff".encode(encoding)
    data = bom + csv_bytes("serial,product_id", f"S1,{product_ids[0]}", f"S2,{product_ids[1]}",
                           line_end="\r\n", encoding=encoding)

    report = import_csv(data)

    assert report.rejected == []
    assert report.inserted == 2
    assert stored(*product_ids) == product_ids


def test_import_crlf_line_ends():
    product_ids = [new_product_id() for _ in range(3)]

    report = import_csv(csv_bytes(*product_ids, "bad-row", line_end="\r\n") + b"\r\n")

    assert report.inserted == 3
    assert list(rejected_lines(report)) == [4]
    assert stored(*product_ids) == product_ids


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_import_delimiter_with_product_id_column(delimiter):
    product_ids = [new_product_id(), new_product_id()]
    lines = [delimiter.join(["serial", "product_id", "batch"])]
    lines += [delimiter.join([f"S{index}", product_id, "B7"]) for index, product_id in enumerate(product_ids)]

    report = import_csv(csv_bytes(*lines))

    assert report.rejected == []
    assert report.rows == 2
    assert report.inserted == 2
    assert stored(*product_ids) == product_ids


@pytest.mark.parametrize("header", ["product_id", "ProductID", "Product ID", " PRODUCT_ID "])
def test_import_header_names_accepted(header):
    product_id = new_product_id()

    report = import_csv(csv_bytes(f"serial,{header}", f"S1,{product_id}"))

    assert report.rows == 1
    assert report.inserted == 1
    assert report.rejected == []


def test_import_without_header_uses_first_column():
    product_id = new_product_id()

    report = import_csv(csv_bytes(f"{product_id},serial-1,batch-7"))

    assert report.inserted == 1
    assert stored(product_id) == [product_id]


def test_import_quoted_cells():
    product_id = new_product_id()

    report = import_csv(csv_bytes('"serial","product_id"', f'"S, with comma","{product_id}"'))

    assert report.rejected == []
    assert report.inserted == 1


def test_import_short_row_reports_empty_cell():
    product_id = new_product_id()

    report = import_csv(csv_bytes("serial,product_id", "S1", f"S2,{product_id}"))

    assert rejected_lines(report) == {2: "empty"}
    assert report.inserted == 1


def test_import_empty_file():
    report = import_csv(b"")

    assert report.rows == 0
    assert report.inserted == 0
    assert report.rejected == []


# --- blank lines, duplicates and bad rows ----------------------------------------------------


def test_import_blank_lines_counted_and_skipped():
    product_ids = [new_product_id(), new_product_id()]
    data = csv_bytes("", "product_id", "", product_ids[0], "   ", ",,", product_ids[1], "oops", "")

    report = import_csv(data)

    assert report.blank_lines == 4
    assert report.rows == 3
    assert report.inserted == 2
    # Line numbers count the blank lines, so "oops" is reported at physical line 8.
    assert list(rejected_lines(report)) == [8]



def test_import_semicolon_after_leading_blank_line():
    product_id = new_product_id()

    report = import_csv(csv_bytes("", "serial;product_id", f"S1;{product_id}"))

    assert report.rejected == []
    assert report.inserted == 1


def test_import_duplicates_report_first_line():
    product_id = new_product_id()
    model, uuid_text = product_id.split(":")
    data = csv_bytes(
        "product_id",                        # line 1
        product_id,                          # line 2
        "",                                  # line 3
        f"{model.lower()}:{uuid_text.upper()}",  # line 4
        f"{model}:{{{uuid_text}}}",          # line 5
        f"  {product_id}  ",                 # line 6
    )

    report = import_csv(data)

    assert report.inserted == 1
    assert rejected_lines(report) == {4: "duplicate of line 2", 5: "duplicate of line 2",
                                      6: "duplicate of line 2"}


def test_import_duplicate_of_rejected_row_not_reported():
    # A bad row never counts as the first occurrence of anything.
    product_id = new_product_id()

    report = import_csv(csv_bytes("EC 100:" + product_id.split(":")[1], product_id))

    assert report.inserted == 1
    assert list(rejected_lines(report)) == [1]


def test_import_malformed_rows_reported_good_rows_imported():
    good = [new_product_id() for _ in range(3)]
    data = csv_bytes(
        good[0],                                  # line 1
        "EC100",                                  # line 2
        "EC100:7c9e6679742540de944be07fc1f90ae7",  # line 3
        good[1],                                  # line 4
        "-bad:" + str(uuid.uuid4()),              # line 5
        "EC100:urn:uuid:" + str(uuid.uuid4()),    # line 6
        good[2],                                  # line 7
    )

    report = import_csv(data)

    reasons = rejected_lines(report)
    assert sorted(reasons) == [2, 3, 5, 6]
    assert "missing ':'" in reasons[2]
    assert "UUID part" in reasons[3]
    assert "model number" in reasons[5]
    assert "UUID part" in reasons[6]
    assert report.inserted == 3
    assert report.rows == 7
    assert stored(*good) == good


def test_import_rejected_row_keeps_raw_value():
    report = import_csv(csv_bytes("  EC100  "))

    assert report.rejected[0].value == "EC100"


def test_import_long_value_rejected_per_row():
    product_id = new_product_id()

    report = import_csv(csv_bytes("x" * 2000, product_id))

    assert rejected_lines(report) == {1: "value too long"}
    assert report.rejected[0].value == "x" * 40 + "..."
    assert report.inserted == 1


def test_import_very_long_value_rejected_per_row():
    product_id = new_product_id()

    report = import_csv(csv_bytes("x" * 5000, product_id))

    assert rejected_lines(report) == {1: "value too long"}
    assert report.inserted == 1


# --- existing products ----------------------------------------------------------------------


def test_import_same_file_twice_inserts_nothing():
    product_ids = [new_product_id() for _ in range(3)]
    data = csv_bytes("product_id", *product_ids)
    import_csv(data)

    report = import_csv(data)

    assert report.inserted == 0
    assert report.unchanged == 3
    assert report.rejected == []
    assert Product.objects.filter(product_id__in=product_ids).count() == 3


def test_import_existing_id_in_other_form_is_unchanged():
    product_id = new_product_id()
    import_csv(csv_bytes(product_id))
    model, uuid_text = product_id.split(":")

    report = import_csv(csv_bytes(f"{model.lower()}:{{{uuid_text.upper()}}}"))

    assert report.inserted == 0
    assert report.unchanged == 1


def test_import_uuid_registered_with_other_model_rejected():
    product_id = new_product_id("EC100")
    uuid_text = product_id.split(":")[1]
    import_csv(csv_bytes(product_id))
    other = new_product_id()

    report = import_csv(csv_bytes(f"EC200:{uuid_text}", other))

    assert report.inserted == 1
    assert list(rejected_lines(report)) == [1]
    assert "already registered with model EC100" in report.rejected[0].reason
    assert Product.objects.get(uuid=uuid_text).model_number == "EC100"


def test_import_same_uuid_two_models_in_file_rejected():
    uuid_text = str(uuid.uuid4())

    report = import_csv(csv_bytes(f"EC100:{uuid_text}", f"EC200:{uuid_text}"))

    assert Product.objects.filter(uuid=uuid_text).count() == 1
    assert report.inserted == 1
    assert list(rejected_lines(report)) == [2]


def test_import_batches_find_duplicates():
    product_ids = [new_product_id() for _ in range(7)]
    import_csv(csv_bytes(product_ids[0]))
    data = csv_bytes(*product_ids, product_ids[2], product_ids[6])

    report = import_csv(data)

    assert report.inserted == 6
    assert report.unchanged == 1
    assert rejected_lines(report) == {8: "duplicate of line 3", 9: "duplicate of line 7"}
    assert stored(*product_ids) == product_ids


# --- dry run, invalid files and the audit log -----------------------------------------------


def test_import_dry_run_writes_nothing():
    product_ids = [new_product_id(), new_product_id()]
    events_before = AuditEvent.objects.filter(action="products.import").count()

    report = import_csv(csv_bytes(*product_ids, "bad"), dry_run=True)

    assert report.dry_run is True
    assert report.inserted == 2
    assert len(report.rejected) == 1
    assert stored(*product_ids) == []
    assert AuditEvent.objects.filter(action="products.import").count() == events_before


def test_import_dry_run_reports_existing_as_unchanged():
    product_id = new_product_id()
    import_csv(csv_bytes(product_id))

    report = import_csv(csv_bytes(product_id), dry_run=True)

    assert report.unchanged == 1
    assert report.inserted == 0


def test_import_invalid_utf8_on_first_line_raises():
    product_id = new_product_id()

    with pytest.raises(ImportFileError, match=r"(?i)not valid utf-8"):
        import_csv(b"EC100:\xff\xfe\n" + csv_bytes(product_id))

    assert stored(product_id) == []


def test_import_invalid_utf8_late_imports_nothing():
    # The file spans several 8 KiB decoder reads and several batches, so earlier
    # batches are already written when decoding reaches the bad byte.
    product_ids = [new_product_id() for _ in range(800)]
    data = csv_bytes(*product_ids) + b"\nEC100:caf\xe9\n"
    assert len(data) > 3 * 8192

    with pytest.raises(ImportFileError, match="save the file as UTF-8"):
        import_csv(data)

    assert stored(*product_ids) == []


def test_import_invalid_utf8_error_names_bad_line():
    data = csv_bytes(new_product_id(), new_product_id()) + b"\nEC100:caf\xe9\n"

    with pytest.raises(ImportFileError) as raised:
        import_csv(data)

    assert str(raised.value).startswith("line 3 ")


def test_import_records_audit_event_with_counts():
    existing = new_product_id()
    import_csv(csv_bytes(existing))
    new = new_product_id()

    import_csv(csv_bytes("product_id", existing, new, "bad", new))

    event = AuditEvent.objects.filter(action="products.import").order_by("-id").first()
    batch = ImportBatch.objects.get(pk=int(event.object_id))
    assert event.details == {"batch": batch.pk, "source": "", "rows": 4, "inserted": 1, "unchanged": 1,
                             "updated": 0, "rejected": 2, "dry_run": False}
    assert event.actor == "test-vendor"
    assert event.object_type == "import_batch"
    assert (batch.rows, batch.inserted, batch.unchanged, batch.rejected) == (4, 1, 1, 2)
    assert batch.created_by == "test-vendor"


def test_import_summary_text():
    product_id = new_product_id()
    import_csv(csv_bytes(product_id))

    report = import_csv(csv_bytes(product_id, "", new_product_id(), "bad"))

    assert report.summary() == "3 rows: 1 inserted, 1 already present, 1 rejected, 1 blank lines skipped"


def test_import_dry_run_summary_says_nothing_written():
    report = import_csv(csv_bytes(new_product_id()), dry_run=True)

    assert report.summary().endswith("(dry run, nothing written)")


# --- the import_products command ------------------------------------------------------------


def test_command_imports_file_and_prints_summary(tmp_path):
    product_ids = [new_product_id(), new_product_id()]
    path = tmp_path / "products.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_bytes("serial;product_id", f"S1;{product_ids[0]}", "",
                                                f"S2;{product_ids[1]}", "S3;EC100", line_end="\r\n"))

    output = run_command(str(path))

    lines = output.splitlines()
    assert lines[0] == "line 5: 'EC100' rejected: missing ':' between model number and UUID (expected ModelNo:UUID)"
    assert re.fullmatch(r"Import batch \d+: 3 rows: 2 inserted, 0 already present, 1 rejected, "
                        r"1 blank lines skipped in [\d.]+ s\.", lines[-1])
    assert stored(*product_ids) == product_ids


def test_command_reports_duplicates_with_line_numbers(tmp_path):
    product_id = new_product_id()
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes("product_id", product_id, "", product_id.lower()))

    output = run_command(str(path))

    assert f"line 4: {product_id.lower()!r} rejected: duplicate of line 2" in output.splitlines()


def test_command_reimport_reports_already_present(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(new_product_id(), new_product_id()))
    run_command(str(path))

    output = run_command(str(path))

    assert "2 rows: 0 inserted, 2 already present, 0 rejected, 0 blank lines skipped" in output


def test_command_dry_run_writes_nothing(tmp_path):
    product_id = new_product_id()
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(product_id))

    output = run_command(str(path), "--dry-run")

    assert ("1 row: 1 inserted, 0 already present, 0 rejected, 0 blank lines skipped "
            "(dry run, nothing written)") in output
    assert stored(product_id) == []


def test_command_invalid_utf8_raises_command_error(tmp_path):
    product_ids = [new_product_id() for _ in range(300)]
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(*product_ids) + b"\nEC100:\xc3\x28\n")

    with pytest.raises(CommandError) as raised:
        run_command(str(path))

    assert str(path) in str(raised.value)
    assert "Nothing was imported" in str(raised.value)
    assert stored(*product_ids) == []


def test_command_missing_file_raises(tmp_path):
    path = tmp_path / "missing.csv"

    with pytest.raises(CommandError, match=r"Cannot read .*missing\.csv"):
        run_command(str(path))


def test_command_reads_standard_input(monkeypatch):
    product_id = new_product_id()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(csv_bytes(product_id))))

    output = run_command("-")

    assert "1 row: 1 inserted" in output
    assert stored(product_id) == [product_id]


def test_command_audit_actor_is_cli_user(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(new_product_id()))

    run_command(str(path))

    event = AuditEvent.objects.filter(action="products.import").order_by("-id").first()
    assert event.actor.startswith("cli:")
    assert event.details["inserted"] == 1
