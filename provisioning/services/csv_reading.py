"""Reading manufacturing CSV files: decoding, delimiter, header and rows.

Shared by the bulk import and by every endpoint or command that takes a list
of Product IDs as CSV. Accepted quirks:

* a UTF-8 byte order mark, or UTF-16 with a byte order mark;
* CRLF line ends and ``,``, ``;`` or tab delimiters;
* an optional header row naming a ``product_id`` column (in any position);
* blank lines, surrounding spaces, braces around the UUID and any letter case.

Any other encoding fails with :class:`ImportFileError` naming the first line
that does not decode, so a caller can refuse the file before writing anything.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Iterator
from typing import BinaryIO

HEADER_NAMES = {"product_id", "productid", "product id"}
# The csv module rejects a longer field as a whole-file error; up to this
# size a too-long value is instead rejected as one bad row.
MAX_CSV_FIELD_CHARS = 1024 * 1024


class ImportFileError(Exception):
    """The file as a whole cannot be read; nothing was imported."""


def _decoded_lines(stream: BinaryIO) -> Iterator[str]:
    """Yield the text lines of ``stream``, each with its line end.

    UTF-8 is decoded line by line, so a decoding error names the line that
    contains the bad byte. UTF-16 needs its byte order mark and is decoded by
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

    if b"\x00" in head[:2] and head.count(b"\x00") >= 1 and head.replace(b"\x00", b"").isascii():
        raise ImportFileError(
            "line 1 looks like UTF-16 without a byte order mark; save the file as UTF-8, "
            "or as UTF-16 with a byte order mark"
        )
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
        # A quoted cell can span lines: report the line where the row starts.
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "new-line character" in str(error):
                raise ImportFileError(
                    f"line {reader.line_num}: the file ends its lines with a carriage return (CR) alone; "
                    "save it with LF or CRLF line ends"
                ) from error
            raise ImportFileError(f"line {reader.line_num}: {error}; check the quoting of that line") from error
        yield first_line, cells


# Known columns of a manufacturing CSV and the header spellings accepted for each.
COLUMN_NAMES = {
    "product_id": HEADER_NAMES,
    "serial_number": {"serial", "serial_number", "serial number", "sn"},
    "model": {"model", "model_number", "model number"},
    "public_key": {"public_key", "public key", "device_public_key"},
    "secret_sha256": {"secret_sha256", "secret hash", "secret_hash"},
}
MAX_EXTRA_COLUMNS = 20


class ManufacturingRows:
    """Iterate over the rows of a manufacturing CSV as ``(line number, cells)``.

    Blank lines are skipped and counted in ``blank_lines``. A first row that
    names a ``product_id`` column is a header: ``columns`` then maps each
    known column to its index and ``extra_columns`` maps every other named
    column (kept as device metadata). Without a header the Product ID is in
    the first column.
    """

    def __init__(self, stream: BinaryIO):
        self._lines = _decoded_lines(stream)
        self.blank_lines = 0
        self.columns: dict[str, int] = {"product_id": 0}
        self.extra_columns: dict[str, int] = {}

    def _read_header(self, line: int, cells: list[str]) -> bool:
        names = [cell.strip().lower() for cell in cells]
        if not any(name in HEADER_NAMES for name in names):
            return False
        columns: dict[str, int] = {}
        extra: dict[str, int] = {}
        for index, name in enumerate(names):
            known = next((column for column, spellings in COLUMN_NAMES.items() if name in spellings), None)
            target = columns if known else extra
            key = known or name
            if not key:
                continue
            if key in target:
                raise ImportFileError(
                    f"line {line}: the header names {key!r} twice (columns {target[key] + 1} and {index + 1}); "
                    "keep one of them and import again"
                )
            target[key] = index
        if len(extra) > MAX_EXTRA_COLUMNS:
            raise ImportFileError(
                f"line {line}: the header has {len(extra)} unknown columns; at most {MAX_EXTRA_COLUMNS} are kept "
                "as device metadata"
            )
        self.columns, self.extra_columns = columns, extra
        return True

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        header_checked = False
        for line, cells in _rows(self._lines):
            if not any(cell.strip() for cell in cells):
                self.blank_lines += 1
                continue
            if not header_checked:
                header_checked = True
                if self._read_header(line, cells):
                    continue
            yield line, cells


class ProductIdColumn:
    """Iterate over the Product ID cells of a CSV: ``(line number, raw value)``."""

    def __init__(self, stream: BinaryIO):
        self._rows = ManufacturingRows(stream)

    @property
    def blank_lines(self) -> int:
        return self._rows.blank_lines

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for line, cells in self._rows:
            column = self._rows.columns["product_id"]
            yield line, cells[column] if column < len(cells) else ""
