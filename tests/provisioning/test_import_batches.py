"""Tests for re-imports, corrections, allocation, import batches, error reports and progress of the import."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from provisioning.management.commands import import_products as import_command
from provisioning.models import CredentialType, ImportBatch, Product
from provisioning.services import importing
from tests.factories import new_product_id
from tests.provisioning.helpers import csv_bytes, import_csv, public_key_pem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("world")]

SECRET_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def product_of(product_id: str) -> Product:
    return Product.objects.get(uuid=product_id.split(":", 1)[1])


def is_stored(product_id: str) -> bool:
    return Product.objects.filter(uuid=product_id.split(":", 1)[1]).exists()


def rejected_lines(report) -> dict[int, str]:
    return {row.line: row.reason for row in report.rejected}


def one_line(pem: str) -> str:
    """Return ``pem`` on one line, its line breaks written as literal ``\\n`` escapes."""
    return pem.strip().replace("\n", "\\n")


def run_command(*args) -> tuple[str, str]:
    """Run import_products; return (stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_products", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


class FakeTerminal:
    """A stream that claims to be a terminal and records what is written to it."""

    def __init__(self):
        self.written: list[str] = []
        self.flushes = 0

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.written.append(text)

    def flush(self) -> None:
        self.flushes += 1


class FakeLog(FakeTerminal):
    """A stream that is not a terminal, such as a log file."""

    def isatty(self) -> bool:
        return False


# --- re-import and corrections --------------------------------------------------------------


def test_reimport_same_file_all_present():
    product_ids = [new_product_id() for _ in range(3)]
    data = csv_bytes("product_id,serial,public_key,secret_sha256,batch",
                     f"{product_ids[0]},S1,{one_line(public_key_pem())},,B1",
                     f"{product_ids[1]},S2,,{SECRET_HASH},B1",
                     f"{product_ids[2]},,,,")
    assert import_csv(data).inserted == 3

    report = import_csv(data)

    assert report.inserted == 0
    assert report.unchanged == 3
    assert report.updated == 0
    assert report.rejected == []


def test_reimport_different_serial_rejected():
    product_id = new_product_id()
    import_csv(csv_bytes("product_id,serial", f"{product_id},S1"))

    report = import_csv(csv_bytes("product_id,serial", f"{product_id},S2"))

    reasons = rejected_lines(report)
    assert list(reasons) == [2]
    assert "--update" in reasons[2]
    assert product_of(product_id).serial_number == "S1"


def test_update_corrects_stored_data():
    serial_fix, key_fix, metadata_fix, same = (new_product_id() for _ in range(4))
    old_pem, new_pem = public_key_pem(), public_key_pem()
    import_csv(csv_bytes(
        "product_id,serial,public_key,batch",
        f"{serial_fix},S1,,B1",
        f"{key_fix},S2,{one_line(old_pem)},B1",
        f"{metadata_fix},S3,,B1",
        f"{same},S4,,B1",
    ))

    report = import_csv(csv_bytes(
        "product_id,serial,secret_sha256,public_key,batch",
        f"{serial_fix},S1-fixed,,,B1",
        f"{key_fix},S2,,{one_line(new_pem)},B1",
        f"{metadata_fix},S3,,,B2",
        f"{same},S4,,,B1",
    ), update=True)

    assert report.rejected == []
    assert report.updated == 3
    assert report.unchanged == 1
    assert report.inserted == 0
    assert product_of(serial_fix).serial_number == "S1-fixed"
    assert product_of(key_fix).credential == new_pem
    assert product_of(metadata_fix).metadata == {"batch": "B2"}


def test_update_replaces_credential_type():
    product_id = new_product_id()
    import_csv(csv_bytes("product_id,public_key", f"{product_id},{one_line(public_key_pem())}"))

    report = import_csv(csv_bytes("product_id,secret_sha256", f"{product_id},{SECRET_HASH}"), update=True)

    assert report.updated == 1
    product = product_of(product_id)
    assert product.credential_type == CredentialType.SECRET_SHA256
    assert product.credential == SECRET_HASH


def test_update_never_changes_model():
    product_id = new_product_id("EC100")
    uuid_text = product_id.split(":")[1]
    import_csv(csv_bytes("product_id,serial", f"{product_id},S1"))

    report = import_csv(csv_bytes("product_id,serial", f"EC200:{uuid_text},S2"), update=True)

    assert list(rejected_lines(report)) == [2]
    assert "EC100" in report.rejected[0].reason
    assert report.updated == 0
    product = product_of(product_id)
    assert product.model_number == "EC100"
    assert product.product_id == product_id
    assert product.serial_number == "S1"


@pytest.mark.parametrize("update", [False, True])
def test_blank_cell_never_differs(update):
    product_id = new_product_id()
    pem = public_key_pem()
    import_csv(csv_bytes("product_id,serial,public_key,batch",
                         f"{product_id},S1,{one_line(pem)},B1"))

    report = import_csv(csv_bytes("product_id,serial,public_key,secret_sha256,batch", f"{product_id},,,,"),
                        update=update)

    assert report.rejected == []
    assert report.unchanged == 1
    assert report.updated == 0
    product = product_of(product_id)
    assert product.serial_number == "S1"
    assert product.credential == pem
    assert product.metadata == {"batch": "B1"}


# --- allocation -----------------------------------------------------------------------------


def test_allocate_to_allocates_accepted(world):
    product_ids = [new_product_id(), new_product_id()]

    report = import_csv(csv_bytes(*product_ids, "bad"), allocate_to=world.a.msp)

    assert report.allocated == 2
    for product_id in product_ids:
        product = product_of(product_id)
        assert product.msp_id == world.a.msp.pk
        assert product.allocated_at is not None


def test_allocate_to_allocates_already_present(world):
    product_id = new_product_id()
    import_csv(csv_bytes(product_id))

    report = import_csv(csv_bytes(product_id), allocate_to=world.a.msp)

    assert report.unchanged == 1
    assert report.allocated == 1
    assert product_of(product_id).msp_id == world.a.msp.pk


def test_allocate_to_other_msp_keeps_owner(world):
    allocated_elsewhere, unallocated = new_product_id(), new_product_id()
    import_csv(csv_bytes(allocated_elsewhere), allocate_to=world.b.msp)

    report = import_csv(csv_bytes(allocated_elsewhere, unallocated), allocate_to=world.a.msp)

    reasons = rejected_lines(report)
    assert list(reasons) == [1]
    assert world.a.msp.slug in reasons[1]
    assert report.allocated == 1
    assert product_of(allocated_elsewhere).msp_id == world.b.msp.pk
    assert product_of(unallocated).msp_id == world.a.msp.pk


def test_allocate_conflict_counted_once(world):
    allocated_elsewhere = new_product_id()
    import_csv(csv_bytes(allocated_elsewhere), allocate_to=world.b.msp)

    report = import_csv(csv_bytes(allocated_elsewhere), allocate_to=world.a.msp)

    assert report.rows == report.inserted + report.unchanged + report.updated + report.rejected_count


def test_allocate_to_records_audit_events(world):
    product_ids = [new_product_id(), new_product_id()]

    report = import_csv(csv_bytes(*product_ids), allocate_to=world.a.msp)

    batch_id = str(report.batch_id)
    assert AuditEvent.objects.filter(action="products.import", object_id=batch_id).count() == 1
    allocate = AuditEvent.objects.get(action="product.allocate", object_id=batch_id)
    assert allocate.msp_id == world.a.msp.pk
    assert allocate.details == {"allocated": 2}


def test_allocate_to_unknown_msp_command_error(tmp_path):
    product_id = new_product_id()
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(product_id))
    batches_before = ImportBatch.objects.count()

    with pytest.raises(CommandError, match="no-such-msp"):
        run_command(str(path), "--allocate-to", "no-such-msp")

    assert not is_stored(product_id)
    assert ImportBatch.objects.count() == batches_before


# --- import batches -------------------------------------------------------------------------


def test_batch_records_import():
    existing = new_product_id()
    import_csv(csv_bytes(existing))
    data = b"\xef\xbb\xbf" + csv_bytes("product_id", existing, new_product_id(), new_product_id(), "bad")

    report = import_csv(data, source_name="line-4.csv")

    batch = ImportBatch.objects.get(pk=report.batch_id)
    assert batch.created_by == "test-vendor"
    assert batch.source_name == "line-4.csv"
    assert batch.status == ImportBatch.Status.COMPLETED
    assert batch.source_sha256 == hashlib.sha256(data).hexdigest()
    assert (batch.rows, batch.inserted, batch.unchanged, batch.updated, batch.rejected) == (4, 2, 1, 0, 1)


def test_batch_one_per_import():
    batches_before = ImportBatch.objects.count()

    first = import_csv(csv_bytes(new_product_id()))
    second = import_csv(csv_bytes(new_product_id()))

    assert ImportBatch.objects.count() == batches_before + 2
    assert first.batch_id != second.batch_id


def test_batch_dry_run_leaves_nothing():
    product_id = new_product_id()
    batches_before = ImportBatch.objects.count()
    events_before = AuditEvent.objects.count()

    report = import_csv(csv_bytes(product_id), dry_run=True)

    assert report.inserted == 1
    assert ImportBatch.objects.count() == batches_before
    assert not is_stored(product_id)
    assert AuditEvent.objects.count() == events_before


def test_batch_linked_to_inserted_products():
    existing = new_product_id()
    first = import_csv(csv_bytes(existing))
    new = new_product_id()

    second = import_csv(csv_bytes(existing, new))

    assert product_of(new).import_batch_id == second.batch_id
    # A product already present keeps the batch that inserted it.
    assert product_of(existing).import_batch_id == first.batch_id


# --- error reports --------------------------------------------------------------------------


def test_error_report_lists_every_rejection():
    good = new_product_id()
    lines = ["product_id"] + [f"bad-{index}" for index in range(1200)] + [good]
    error_report = io.StringIO()

    report = import_csv(csv_bytes(*lines), error_report=error_report)

    rows = list(csv.reader(io.StringIO(error_report.getvalue())))
    assert rows[0] == ["line", "value", "reason"]
    assert len(rows) == 1201
    assert [int(row[0]) for row in rows[1:]] == list(range(2, 1202))
    assert rows[1][1] == "bad-0"
    assert rows[-1][1] == "bad-1199"
    assert report.inserted == 1


def test_error_report_caps_rejections_in_memory():
    lines = [f"bad-{index}" for index in range(1200)]

    report = import_csv(csv_bytes(*lines), error_report=io.StringIO())

    assert report.rejected_count == 1200
    assert len(report.rejected) == 1000
    assert [row.line for row in report.rejected] == list(range(1, 1001))


def test_error_report_empty_without_rejections():
    error_report = io.StringIO()

    import_csv(csv_bytes(new_product_id()), error_report=error_report)

    assert error_report.getvalue() == ""


def test_command_writes_errors_file_beside_input(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(new_product_id(), "bad"))

    stdout, _stderr = run_command(str(path))

    errors_path = tmp_path / "products.csv.errors.csv"
    rows = list(csv.reader(errors_path.open(newline="")))
    assert rows[0] == ["line", "value", "reason"]
    assert [row[:2] for row in rows[1:]] == [["2", "bad"]]
    assert f"Every rejected row is listed in {errors_path}." in stdout


def test_command_removes_errors_file_when_clean(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(new_product_id()))
    stale = tmp_path / "products.csv.errors.csv"
    stale.write_text("line,value,reason\n1,old,old reason\n")

    run_command(str(path))

    assert not stale.exists()


def test_command_errors_option_sets_path(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(new_product_id(), "bad"))
    errors_path = tmp_path / "rejected.csv"

    run_command(str(path), "--errors", str(errors_path))

    assert errors_path.read_text().splitlines()[0] == "line,value,reason"
    assert not (tmp_path / "products.csv.errors.csv").exists()


def test_command_fatal_error_leaves_no_errors_file(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes("product_id,serial,sn", f"{new_product_id()},S1,S1"))

    with pytest.raises(CommandError):
        run_command(str(path))

    assert not (tmp_path / "products.csv.errors.csv").exists()


def test_command_prints_more_rejected_count(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(*[f"bad-{index}" for index in range(1200)]))

    stdout, _stderr = run_command(str(path))

    lines = stdout.splitlines()
    assert sum(line.startswith("line ") for line in lines) == 1000
    assert "... and 200 more rejected rows." in lines


def test_command_last_line_is_summary(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(new_product_id(), "bad"))

    stdout, _stderr = run_command(str(path))

    last = stdout.splitlines()[-1]
    assert re.fullmatch(r"Import batch \d+: 2 rows: 1 inserted, 0 already present, 1 rejected, "
                        r"0 blank lines skipped in [\d.]+ s\.", last)


# --- progress -------------------------------------------------------------------------------


def test_command_progress_plain_lines_off_terminal(tmp_path, monkeypatch):
    # The default 10 s between lines would print nothing for a small file.
    monkeypatch.setattr(import_command, "PLAIN_PROGRESS_INTERVAL", 0.0)
    path = tmp_path / "products.csv"
    path.write_bytes(csv_bytes(new_product_id(), new_product_id()))

    _stdout, stderr = run_command(str(path))

    assert "\r" not in stderr
    assert "[" not in stderr
    assert stderr.splitlines()[-1].startswith("2 rows read in ")
    assert stderr.splitlines()[-1].endswith("(100% of the file)")


def test_progress_draws_bar_on_terminal():
    terminal = FakeTerminal()
    progress = import_command.Progress(terminal, total_bytes=1000)

    progress(500, 10)
    progress.finish()

    assert re.match(r"\r\[#{15}-{15}\] +50% 10 rows, ", terminal.written[0])
    assert terminal.flushes >= 1
    assert terminal.written[-1] == "\n"


def test_progress_bar_unknown_size():
    terminal = FakeTerminal()
    progress = import_command.Progress(terminal, total_bytes=None)

    progress(500, 10)

    assert re.match(r"\r\[-{30}\] +\? 10 rows, ", terminal.written[0])


def test_progress_plain_at_most_once_per_interval(monkeypatch):
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(import_command, "time", SimpleNamespace(monotonic=lambda: clock.now))
    log = FakeLog()
    progress = import_command.Progress(log, total_bytes=1000)

    # Calls at 0.5 s steps over 25 s: one line per 10 s interval.
    for step in range(1, 51):
        clock.now = 100.0 + step * 0.5
        progress(step * 20, step * 100)
    progress.finish()

    assert len(log.written) == 2
    assert all(line.endswith("\n") and "\r" not in line for line in log.written)
    assert log.written[0] == "2,000 rows read in 10 s (40% of the file)\n"


def test_progress_reported_for_rejected_rows(monkeypatch):
    monkeypatch.setattr(importing, "PROGRESS_INTERVAL", -1.0)
    calls = []

    import_csv(csv_bytes("bad-1", "bad-2", "bad-3"), progress=lambda bytes_read, rows: calls.append(rows))

    # One call per row read, and the final one.
    assert calls == [1, 2, 3, 3]


def test_progress_reported_while_reading(monkeypatch):
    monkeypatch.setattr(importing, "PROGRESS_INTERVAL", -1.0)
    calls = []
    data = csv_bytes(new_product_id(), new_product_id())

    import_csv(data, progress=lambda bytes_read, rows: calls.append((bytes_read, rows)))

    assert [rows for _bytes, rows in calls] == [1, 2, 2]
    assert calls[-1][0] == len(data)


# --- scale ----------------------------------------------------------------------------------


def test_import_twenty_thousand_rows():
    product_ids = [new_product_id() for _ in range(20_000)]
    data = csv_bytes("product_id,serial", *(f"{product_id},S{index}" for index, product_id in enumerate(product_ids)))

    started = time.monotonic()
    report = import_csv(data)
    seconds = time.monotonic() - started

    assert report.inserted == 20_000
    assert report.rejected_count == 0
    assert Product.objects.filter(import_batch_id=report.batch_id).count() == 20_000
    # A loose bound, far above the usual time: it catches a per-row query in the merge, not a slow host.
    assert seconds < 20
