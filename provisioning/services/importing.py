"""Importing Product IDs from a manufacturing CSV.

The file is streamed, so memory grows with the number of distinct Product IDs
seen (for duplicate detection), not with the file size. Every good row is
imported; every bad row is reported with its line number and reason. The
whole import is one transaction: a fatal error (an undecodable file) leaves
nothing behind, and a re-import of the same file inserts nothing.

Accepted quirks:

* a UTF-8 byte order mark, or UTF-16 with a byte order mark;
* CRLF line ends and ``,``, ``;`` or tab delimiters;
* an optional header row naming a ``product_id`` column;
* blank lines, surrounding spaces, braces around the UUID and any letter case.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, record_event
from provisioning.models import Product
from provisioning.product_ids import InvalidProductId, ProductId, parse_product_id

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
HEADER_NAMES = {"product_id", "productid", "product id"}
MAX_FIELD_CHARS = 1024
# The csv module rejects a longer field as a whole-file error; up to this
# size a too-long value is instead rejected as one bad row.
MAX_CSV_FIELD_CHARS = 1024 * 1024


class ImportFileError(Exception):
    """The file as a whole cannot be read; nothing was imported."""


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
    blank_lines: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        mode = " (dry run, nothing written)" if self.dry_run else ""
        return (
            f"{self.rows} rows: {self.inserted} inserted, {self.unchanged} already present, "
            f"{len(self.rejected)} rejected, {self.blank_lines} blank lines skipped{mode}"
        )


def _decoded_lines(stream: BinaryIO) -> Iterator[str]:
    """Yield the text lines of ``stream``, each with its line end.

    UTF-8 is decoded line by line, so a decoding error names the line that
    holds the bad byte. UTF-16 needs its byte order mark and is decoded by
    the codec as a whole.
    """
    head = stream.read(4)
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        # The utf-16 codec reads the byte order mark itself.
        text = io.TextIOWrapper(io.BufferedReader(_Prefixed(head, stream)), encoding="utf-16", newline="")
        number = 0
        try:
            for number, line in enumerate(text, start=1):  # noqa: B007 - used in the error below
                yield line
        except UnicodeDecodeError as error:
            raise ImportFileError(f"line {number + 1} is not valid UTF-16: {error.reason}") from error
        return

    skip = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    raw = io.BufferedReader(_Prefixed(head[skip:], stream))
    # A newline byte never occurs inside a UTF-8 multi-byte sequence, so
    # splitting the bytes on it first is safe.
    for number, raw_line in enumerate(raw, start=1):
        try:
            yield raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportFileError(
                f"line {number} is not valid UTF-8 (byte {error.start + 1} of the line); "
                "save the file as UTF-8 or UTF-16 with a byte order mark"
            ) from error


class _Prefixed(io.RawIOBase):
    """A raw stream that yields ``prefix`` and then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO):
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        chunk = self._stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _sniff_delimiter(line: str) -> str:
    counts = {delimiter: line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _rows(lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, cells) for each row; line numbers count physical lines from 1."""
    # The delimiter is guessed from the first line that has any content.
    leading: list[str] = []
    for line in lines:
        leading.append(line)
        if line.strip():
            break
    delimiter = _sniff_delimiter(leading[-1]) if leading else ","
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)
    reader = csv.reader(itertools.chain(leading, lines), delimiter=delimiter)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise ImportFileError(f"line {reader.line_num}: {error}") from error
        yield reader.line_num, cells


class ProductIdColumn:
    """Iterate over the Product ID cells of a CSV: ``(line number, raw value)``.

    Skips blank lines (counted in ``blank_lines``) and a header row; the header
    may put ``product_id`` in any column, otherwise the first column is used.
    """

    def __init__(self, stream: BinaryIO):
        self._lines = _decoded_lines(stream)
        self.blank_lines = 0

    def __iter__(self) -> Iterator[tuple[int, str]]:
        column = 0
        header_seen = False
        for line, cells in _rows(self._lines):
            if not any(cell.strip() for cell in cells):
                self.blank_lines += 1
                continue
            if not header_seen:
                header_seen = True
                names = [cell.strip().lower() for cell in cells]
                matches = [index for index, name in enumerate(names) if name in HEADER_NAMES]
                if matches:
                    column = matches[0]
                    continue
            yield line, cells[column] if column < len(cells) else ""


def import_products(stream: BinaryIO, *, actor: Actor, dry_run: bool = False,
                    batch_size: int = BATCH_SIZE) -> ImportReport:
    """Import the Product IDs of a manufacturing CSV read from ``stream`` (bytes).

    Raises :class:`ImportFileError` for a file that cannot be read at all; row
    problems never raise, they are listed in the report.
    """
    report = ImportReport(dry_run=dry_run)
    cells = ProductIdColumn(stream)
    # UUID -> (first line, model number): a UUID names one device whatever its model.
    first_seen: dict[uuid.UUID, tuple[int, str]] = {}
    batch: list[tuple[int, str, ProductId]] = []

    with transaction.atomic():
        for line, raw in cells:
            report.rows += 1
            if len(raw) > MAX_FIELD_CHARS:
                report.rejected.append(RejectedRow(line, raw[:40] + "...", "value too long"))
                continue
            try:
                product_id = parse_product_id(raw)
            except InvalidProductId as error:
                report.rejected.append(RejectedRow(line, raw.strip(), error.reason))
                continue

            earlier = first_seen.get(product_id.uuid)
            if earlier is not None:
                first_line, model = earlier
                reason = (f"duplicate of line {first_line}" if model == product_id.model_number
                          else f"UUID already used with model {model} on line {first_line}")
                report.rejected.append(RejectedRow(line, raw.strip(), reason))
                continue
            first_seen[product_id.uuid] = (line, product_id.model_number)
            batch.append((line, raw.strip(), product_id))
            if len(batch) >= batch_size:
                _write_batch(batch, report)
                batch = []
        if batch:
            _write_batch(batch, report)
        report.blank_lines = cells.blank_lines

        record_event(
            "products.import",
            actor=actor,
            object_type="import",
            object_id=timezone.now().isoformat(),
            details={
                "rows": report.rows,
                "inserted": report.inserted,
                "unchanged": report.unchanged,
                "rejected": len(report.rejected),
                "dry_run": dry_run,
            },
        )
        if dry_run:
            transaction.set_rollback(True)

    logger.info("Product import by %s: %s", actor.name, report.summary())
    return report


def _write_batch(batch: list[tuple[int, str, ProductId]], report: ImportReport) -> None:
    existing = dict(
        Product.objects.filter(uuid__in=[product_id.uuid for _, _, product_id in batch]).values_list(
            "uuid", "model_number"
        )
    )
    new_rows = []
    for line, raw, product_id in batch:
        known_model = existing.get(product_id.uuid)
        if known_model is None:
            new_rows.append(
                Product(product_id=str(product_id), model_number=product_id.model_number, uuid=product_id.uuid)
            )
        elif known_model == product_id.model_number:
            report.unchanged += 1
        else:
            report.rejected.append(
                RejectedRow(line, raw, f"UUID already registered with model {known_model}; fix the model number")
            )
    # ignore_conflicts: a concurrent import of the same IDs must not fail this one.
    # NOTE: such a concurrent insert is still counted as inserted here.
    Product.objects.bulk_create(new_rows, ignore_conflicts=True)
    report.inserted += len(new_rows)
