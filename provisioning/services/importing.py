"""Importing Product IDs from a manufacturing CSV, at the scale of a factory line.

Python reads the file once, row by row, checks each Product ID with
:func:`provisioning.product_ids.canonical_parts` and streams every non-blank
row into a temporary staging table with PostgreSQL ``COPY``. The merge then
happens in a few set-based statements: duplicates within the file, conflicts
with stored products, unknown models, inserts of new products and the
optional allocation to an MSP. Memory therefore stays flat whatever the file
size, because the staging table, not Python, stores the rows.

Every good row is imported and every bad row is reported with its line number
and reason, in the report and, when asked, in an error report file. The whole
import is one transaction: a fatal error (an undecodable file, an ambiguous
header) leaves nothing behind, and importing the same file again inserts
nothing.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from django.db import connection, transaction

from audit.services import Actor, record_event
from provisioning.models import CredentialType, ImportBatch
from provisioning.product_ids import InvalidProductId, canonical_parts
from provisioning.services.csv_reading import ImportFileError, ManufacturingRows, ProductIdColumn

logger = logging.getLogger(__name__)

__all__ = ["ImportFileError", "ImportReport", "ProductIdColumn", "RejectedRow", "import_products"]

MAX_FIELD_CHARS = 1024
MAX_PUBLIC_KEY_CHARS = 8192
MAX_METADATA_VALUE_CHARS = 256
# Rejections kept in memory for the caller; the error report file gets all of them.
MAX_REJECTIONS_IN_REPORT = 1000
SECRET_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
# Progress callbacks run at most this often (seconds).
PROGRESS_INTERVAL = 0.5


@dataclass
class RejectedRow:
    line: int
    value: str
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    inserted: int = 0
    unchanged: int = 0
    updated: int = 0
    rejected_count: int = 0
    blank_lines: int = 0
    allocated: int = 0
    # The first MAX_REJECTIONS_IN_REPORT rejections, in line order.
    rejected: list[RejectedRow] = field(default_factory=list)
    dry_run: bool = False
    batch_id: int | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        mode = " (dry run, nothing written)" if self.dry_run else ""
        rows = "1 row" if self.rows == 1 else f"{self.rows} rows"
        updated = f", {self.updated} updated" if self.updated else ""
        allocated = f", {self.allocated} allocated" if self.allocated else ""
        return (
            f"{rows}: {self.inserted} inserted, {self.unchanged} already present{updated}, "
            f"{self.rejected_count} rejected, {self.blank_lines} blank lines skipped{allocated}{mode}"
        )


class _CountingStream:
    """Wraps a binary stream to count the bytes read, for progress reports."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.bytes_read += len(chunk)
        return chunk


STAGING_TABLE = """
CREATE TEMPORARY TABLE import_staging (
    line integer NOT NULL,
    raw text NOT NULL,
    product_id text,
    model_number text,
    uuid uuid,
    serial_number text NOT NULL DEFAULT '',
    credential_type text NOT NULL DEFAULT '',
    credential text NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}',
    reason text
) ON COMMIT DROP
"""


def _public_key_pem(value: str) -> str:
    """Return ``value`` (PEM or base64 DER of a SubjectPublicKeyInfo) as PEM, or raise ValueError."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    text = value.strip()
    if len(text) > MAX_PUBLIC_KEY_CHARS:
        raise ValueError(f"public key longer than {MAX_PUBLIC_KEY_CHARS} characters")
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.replace("\\n", "\n").encode())
        else:
            key = load_der_public_key(base64.b64decode(text, validate=True))
    except UnsupportedAlgorithm as error:
        raise ValueError("public key uses an unsupported algorithm or curve") from error
    except (ValueError, TypeError, binascii.Error) as error:
        raise ValueError("public key is neither a PEM nor a base64 DER public key") from error
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _optional_columns(rows: ManufacturingRows, cells: list[str]) -> tuple[str, str, str, dict]:
    """Return (serial number, credential type, credential, metadata) of a row; raise ValueError when bad."""

    def cell(name: str) -> str:
        index = rows.columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    serial = cell("serial_number")
    if len(serial) > 64:
        raise ValueError("serial number longer than 64 characters")
    public_key = cell("public_key")
    secret_hash = cell("secret_sha256")
    if public_key and secret_hash:
        raise ValueError("both public_key and secret_sha256 are set; give one credential per device")
    credential_type, credential = "", ""
    if public_key:
        credential_type, credential = CredentialType.PUBLIC_KEY, _public_key_pem(public_key)
    elif secret_hash:
        if not SECRET_SHA256_RE.fullmatch(secret_hash):
            raise ValueError("secret_sha256 is not 64 hexadecimal digits")
        credential_type, credential = CredentialType.SECRET_SHA256, secret_hash.lower()
    metadata = {}
    for name, index in rows.extra_columns.items():
        value = cells[index].strip() if index < len(cells) else ""
        if value:
            if len(value) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(f"column {name!r} is longer than {MAX_METADATA_VALUE_CHARS} characters")
            metadata[name] = value
    return serial, credential_type, credential, metadata


def _stage_rows(cursor, rows: ManufacturingRows, report: ImportReport,
                progress: Callable[[int, int], None] | None, counter: _CountingStream) -> None:
    """Check every row and COPY it into the staging table; bad rows carry their reason."""
    last_progress = time.monotonic()
    with cursor.copy(
        "COPY import_staging (line, raw, product_id, model_number, uuid, serial_number, credential_type, "
        "credential, metadata, reason) FROM STDIN"
    ) as copy:
        for line, cells in rows:
            report.rows += 1
            if progress and time.monotonic() - last_progress > PROGRESS_INTERVAL:
                progress(counter.bytes_read, report.rows)
                last_progress = time.monotonic()
            column = rows.columns["product_id"]
            raw = cells[column] if column < len(cells) else ""
            if any("\x00" in cell for cell in cells):
                # PostgreSQL text cannot hold NUL, and no real Product ID has one.
                copy.write_row((line, raw.replace("\x00", "\\0")[:80], None, None, None, "", "", "", "{}",
                                "contains a NUL byte; the file may be binary, or UTF-16 without a byte order mark"))
                continue
            if len(raw) > MAX_FIELD_CHARS:
                copy.write_row((line, raw[:40] + "...", None, None, None, "", "", "", "{}", "value too long"))
                continue
            try:
                model, uuid_text = canonical_parts(raw)
            except InvalidProductId as error:
                copy.write_row((line, raw.strip(), None, None, None, "", "", "", "{}", error.reason))
                continue
            declared_model = rows.columns.get("model")
            if declared_model is not None and declared_model < len(cells):
                stated = cells[declared_model].strip().upper()
                if stated and stated != model:
                    copy.write_row((line, raw.strip(), None, None, None, "", "", "", "{}",
                                    f"model column {stated} does not match the Product ID's model {model}"))
                    continue
            try:
                serial, credential_type, credential, metadata = _optional_columns(rows, cells)
            except ValueError as error:
                copy.write_row((line, raw.strip(), None, None, None, "", "", "", "{}", str(error)))
                continue
            copy.write_row((line, raw.strip(), f"{model}:{uuid_text}", model, uuid_text, serial, credential_type,
                            credential, json.dumps(metadata), None))
    report.blank_lines = rows.blank_lines


# The merge, one statement per step. Each step only looks at rows that no
# earlier step rejected (reason IS NULL).
MERGE_STEPS = [
    # Later rows with a UUID seen on an earlier line of the file.
    """
    UPDATE import_staging s
    SET reason = CASE WHEN f.model_number = s.model_number THEN 'duplicate of line ' || f.line
                      ELSE 'UUID already used with model ' || f.model_number || ' on line ' || f.line END
    FROM (SELECT DISTINCT ON (uuid) uuid, line, model_number FROM import_staging
          WHERE reason IS NULL ORDER BY uuid, line) f
    WHERE s.reason IS NULL AND s.uuid = f.uuid AND s.line <> f.line
    """,
    # Models outside the catalogue, while the catalogue has entries.
    """
    UPDATE import_staging s SET reason = 'unknown model ' || s.model_number || '; add it to the model catalogue'
    WHERE s.reason IS NULL AND EXISTS (SELECT 1 FROM provisioning_productmodel)
      AND NOT EXISTS (SELECT 1 FROM provisioning_productmodel m WHERE upper(m.model_number) = s.model_number)
    """,
    # UUIDs the Provision Server already has under another model.
    """
    UPDATE import_staging s
    SET reason = 'UUID already registered with model ' || p.model_number || '; fix the model number'
    FROM provisioning_product p
    WHERE s.reason IS NULL AND p.uuid = s.uuid AND p.model_number <> s.model_number
    """,
]

# Stored products whose manufacturing data the file states differently. A
# blank cell never counts as a difference.
DIFFERS = """
    (s.serial_number <> '' AND s.serial_number <> p.serial_number)
    OR (s.credential_type <> '' AND (s.credential_type <> p.credential_type OR s.credential <> p.credential))
    OR (s.metadata <> '{}'::jsonb AND NOT (p.metadata @> s.metadata))
"""


def _merge(cursor, *, update: bool, batch_id: int | None, report: ImportReport) -> None:
    for statement in MERGE_STEPS:
        cursor.execute(statement)

    if update:
        cursor.execute(f"""
            UPDATE provisioning_product p
            SET serial_number = CASE WHEN s.serial_number <> '' THEN s.serial_number ELSE p.serial_number END,
                credential_type = CASE WHEN s.credential_type <> '' THEN s.credential_type
                                       ELSE p.credential_type END,
                credential = CASE WHEN s.credential_type <> '' THEN s.credential ELSE p.credential END,
                metadata = p.metadata || s.metadata
            FROM import_staging s
            WHERE s.reason IS NULL AND p.uuid = s.uuid AND ({DIFFERS})
        """)  # noqa: S608 - constant SQL, no input
        report.updated = cursor.rowcount
    else:
        cursor.execute(f"""
            UPDATE import_staging s
            SET reason = 'differs from the stored product (serial number, credential or metadata); '
                         || 'import with --update to correct it'
            FROM provisioning_product p
            WHERE s.reason IS NULL AND p.uuid = s.uuid AND ({DIFFERS})
        """)  # noqa: S608 - constant SQL, no input

    cursor.execute("""
        INSERT INTO provisioning_product
            (product_id, model_number, uuid, state, created_at, last_facts, serial_number, credential_type,
             credential, metadata, import_batch_id)
        SELECT s.product_id, s.model_number, s.uuid, 'active', now(), '{}', s.serial_number, s.credential_type,
               s.credential, s.metadata, %s
        FROM import_staging s
        WHERE s.reason IS NULL AND NOT EXISTS (SELECT 1 FROM provisioning_product p WHERE p.uuid = s.uuid)
        ORDER BY s.line
        ON CONFLICT DO NOTHING
    """, [batch_id])
    report.inserted = cursor.rowcount


def _count_unchanged(cursor, report: ImportReport) -> None:
    """Count accepted rows that neither inserted nor updated a product (after allocation rejections)."""
    cursor.execute("SELECT count(*) FROM import_staging WHERE reason IS NULL")
    accepted = cursor.fetchone()[0]
    report.unchanged = max(accepted - report.inserted - report.updated, 0)


def _allocate(cursor, msp, *, report: ImportReport) -> None:
    """Allocate every accepted row's product to ``msp``; rows held by another MSP are rejected."""
    cursor.execute("""
        UPDATE provisioning_product p SET msp_id = %s, allocated_at = now()
        FROM import_staging s
        WHERE s.reason IS NULL AND p.uuid = s.uuid AND p.msp_id IS NULL
    """, [msp.pk])
    report.allocated = cursor.rowcount
    cursor.execute("""
        UPDATE import_staging s
        SET reason = 'imported, but already allocated to another MSP; not allocated to ' || %s
        FROM provisioning_product p
        WHERE s.reason IS NULL AND p.uuid = s.uuid AND p.msp_id <> %s
    """, [msp.slug, msp.pk])


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """Return ``value`` with a leading apostrophe when a spreadsheet would run it as a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _collect_rejections(cursor, report: ImportReport, error_report: TextIO | None) -> None:
    cursor.execute("SELECT count(*) FROM import_staging WHERE reason IS NOT NULL")
    report.rejected_count = cursor.fetchone()[0]
    if not report.rejected_count:
        return
    writer = csv.writer(error_report) if error_report is not None else None
    if writer:
        writer.writerow(["line", "value", "reason"])
    cursor.execute("SELECT line, raw, reason FROM import_staging WHERE reason IS NOT NULL ORDER BY line")
    while True:
        chunk = cursor.fetchmany(5000)
        if not chunk:
            break
        for line, raw, reason in chunk:
            if len(report.rejected) < MAX_REJECTIONS_IN_REPORT:
                report.rejected.append(RejectedRow(line, raw, reason))
            if writer:
                writer.writerow([line, spreadsheet_safe(raw), reason])
        if not writer and len(report.rejected) >= MAX_REJECTIONS_IN_REPORT:
            break


def import_products(stream: BinaryIO, *, actor: Actor, dry_run: bool = False, allocate_to=None,
                    update: bool = False, source_name: str = "", error_report: TextIO | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import the products of a manufacturing CSV read from ``stream`` (bytes).

    ``allocate_to`` (an MSP) also allocates every accepted product that no
    MSP has yet. ``update`` lets the file correct the serial number,
    credential and metadata of stored products; without it such rows are
    rejected. ``error_report`` receives every rejection as CSV
    (line, value, reason). ``progress`` is called with (bytes read, rows
    read) while the file is read.

    Raises :class:`ImportFileError` for a file that cannot be read at all;
    row problems never raise, they are listed in the report.
    """
    started = time.monotonic()
    report = ImportReport(dry_run=dry_run)
    hashing = _HashingStream(stream)
    counter = _CountingStream(hashing)
    rows = ManufacturingRows(counter)

    with transaction.atomic():
        batch = ImportBatch.objects.create(created_by=actor.name, source_name=source_name[:255],
                                           status=ImportBatch.Status.DRY_RUN if dry_run else
                                           ImportBatch.Status.COMPLETED, allocated_to=allocate_to)
        report.batch_id = batch.pk
        with connection.cursor() as wrapper:
            cursor = wrapper.cursor
            # ON COMMIT DROP is not enough inside an outer transaction (a caller's
            # atomic block, a test), so the table is also dropped explicitly.
            cursor.execute("DROP TABLE IF EXISTS import_staging")
            cursor.execute(STAGING_TABLE)
            _stage_rows(cursor, rows, report, progress, counter)
            if progress:
                progress(counter.bytes_read, report.rows)
            cursor.execute("CREATE INDEX ON import_staging (uuid)")
            cursor.execute("ANALYZE import_staging")
            _merge(cursor, update=update, batch_id=batch.pk, report=report)
            if allocate_to is not None:
                _allocate(cursor, allocate_to, report=report)
            _count_unchanged(cursor, report)
            _collect_rejections(cursor, report, error_report)
            cursor.execute("DROP TABLE import_staging")

        report.seconds = time.monotonic() - started
        batch.source_sha256 = hashing.hexdigest()
        for name in ("rows", "inserted", "unchanged", "updated", "allocated", "seconds"):
            setattr(batch, name, getattr(report, name))
        batch.rejected = report.rejected_count
        batch.save()
        details = {"batch": batch.pk, "source": source_name, "rows": report.rows, "inserted": report.inserted,
                   "unchanged": report.unchanged, "updated": report.updated,
                   "rejected": report.rejected_count, "dry_run": dry_run}
        record_event("products.import", actor=actor, object_type="import_batch", object_id=str(batch.pk),
                     details=details)
        if allocate_to is not None and report.allocated:
            record_event("product.allocate", actor=actor, object_type="import_batch", object_id=str(batch.pk),
                         msp_id=allocate_to.pk, details={"allocated": report.allocated})
        if dry_run:
            transaction.set_rollback(True)
            report.batch_id = None

    # The time includes the commit, where PostgreSQL does part of the work
    # (deferred constraint checks); the batch row learns it afterwards.
    report.seconds = time.monotonic() - started
    if report.batch_id:
        ImportBatch.objects.filter(pk=report.batch_id).update(seconds=report.seconds)
    logger.info("Product import %s by %s from %r: %s in %.1f s", batch.pk, actor.name, source_name,
                report.summary(), report.seconds)
    return report


class _HashingStream:
    """Wraps a binary stream to compute the SHA-256 of everything read."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._digest.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

