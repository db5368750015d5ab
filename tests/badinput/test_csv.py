"""Broken CSV files at every CSV upload: the MSP claim (API and portal), the vendor allocation and the import.

A file that cannot be read as a whole gets a precise 4xx (``unreadable_csv``,
``empty_csv``, ``body_too_large``) or a form error, and nothing is written. A
readable file gets a report of every row: good rows are applied and each bad
row is listed with its line number and reason.
"""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from msp.forms import MAX_CSV_BYTES
from tests.badinput.helpers import assert_error, msp_client, snapshot, vendor_client
from tests.factories import new_product_id
from tests.msp.conftest import allocated_products

CLAIM_URL = "/api/v1/msp/products/claim"
PORTAL_CLAIM_URL = "/portal/claim/"

# Cells that a spreadsheet would run as formulas. None has a comma, so each stays one cell.
FORMULAS = ["=cmd()", "+1+1", "-2+3", "@SUM(A1:A2)", '=HYPERLINK("http://evil.example")']

# (case, CSV body): files that cannot be read as a whole.
UNREADABLE = [
    ("latin1", "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7\nEC100:caf\xe9\n".encode("latin-1")),
    ("utf16_without_bom", "EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7\n".encode("utf-16-le")),
    ("binary", bytes(range(256)) * 4),
    ("cr_line_ends", b'"EC100:a"\r"EC100:b"\r"EC100:c"'),
    ("duplicate_header", b"product_id,product_id\nEC100:7c9e6679-7425-40de-944b-e07fc1f90ae7\n"),
    ("too_many_columns", ("product_id," + ",".join(f"extra{index}" for index in range(21)) + "\n").encode()),
]

# (case, CSV body): files with no Product ID at all.
EMPTY = [
    ("no_bytes", b""),
    ("blank_lines", b"\n\r\n  \n"),
    ("header_only", b"product_id\n"),
    ("bom_and_header", codecs.BOM_UTF8 + b"Product ID;serial\r\n\r\n"),
    ("empty_cells", b" , \n,,\n"),
]


def _rows(*lines: str | bytes) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n"


# (case, CSV body, line numbers rejected): readable files whose every row is bad.
BAD_ROWS = [
    ("wrong_header", _rows("serial,model", "SN1,EC100"), [1, 2]),
    ("missing_column", _rows("serial,product_id", "SN1", "SN2,"), [2, 3]),
    ("malformed_ids", _rows("EC100", "EC100:not-a-uuid", ":7c9e6679-7425-40de-944b-e07fc1f90ae7",
                            "EC 100:7c9e6679-7425-40de-944b-e07fc1f90ae7", "EC100:7c9e6679742540de944be07fc1f90ae7"),
     [1, 2, 3, 4, 5]),
    ("formulas", _rows(*FORMULAS), [1, 2, 3, 4, 5]),
    ("nul_bytes", _rows(b"EC100:\x00", b"\x00\x00"), [1, 2]),
    ("long_line", _rows("EC100:" + "a" * 60_000), [1]),
    ("unknown_products", _rows(new_product_id(), new_product_id()), [1, 2]),
    ("quoted_newline", _rows('"EC100:7c9e6679-7425-40de-944b-e07fc1f90ae7', 'x"'), [1]),
]


def _claim_csv(world, body: bytes):
    return msp_client(world).post(CLAIM_URL, body, content_type="text/csv")


@pytest.mark.parametrize(("case", "body"), UNREADABLE, ids=[case for case, _ in UNREADABLE])
def test_claim_api_unreadable_csv_rejected(world, case, body):
    before = snapshot(world)

    response = _claim_csv(world, body)

    assert_error(response, 400, "unreadable_csv")
    assert snapshot(world) == before


@pytest.mark.parametrize(("case", "body"), EMPTY, ids=[case for case, _ in EMPTY])
def test_claim_api_empty_csv_rejected(world, case, body):
    before = snapshot(world)

    response = _claim_csv(world, body)

    assert_error(response, 400, "empty_csv")
    assert snapshot(world) == before


def test_claim_api_oversized_csv_rejected(world):
    before = snapshot(world)

    response = _claim_csv(world, _rows(new_product_id()) * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 40))

    assert_error(response, 413, "body_too_large")
    assert snapshot(world) == before


@pytest.mark.parametrize(("case", "body", "lines"), BAD_ROWS, ids=[case for case, _, _ in BAD_ROWS])
def test_claim_api_reports_every_bad_row(world, case, body, lines):
    before = snapshot(world)

    response = _claim_csv(world, body)

    assert response.status_code == 200, response.content[:300]
    result = response.json()
    assert result["changed"] == 0
    assert result["unchanged"] == 0
    assert [item["position"] for item in result["rejected"]] == lines
    assert all(item["reason"] for item in result["rejected"])
    assert snapshot(world) == before


def test_claim_api_echoes_formula_cells_as_values(world):
    response = _claim_csv(world, _rows(*FORMULAS))

    assert [item["value"] for item in response.json()["rejected"]] == FORMULAS


def test_claim_api_applies_good_rows_among_bad(world):
    first, second = allocated_products(world.a.msp, 2)
    body = codecs.BOM_UTF8 + (
        "product_id;serial\r\n"
        f"{first};SN1\r\n"
        "\r\n"
        f"{first.lower()};SN1\r\n"
        "=cmd();SN2\r\n"
        f" {{{second.split(':')[1].upper()}}} ;SN3\r\n"
        f"{second.split(':')[0].lower()}:{{{second.split(':')[1]}}};SN4\r\n"
    ).encode()

    response = _claim_csv(world, body)

    assert response.status_code == 200, response.content[:300]
    result = response.json()
    assert result["changed"] == 2
    assert result["unchanged"] == 0
    assert [(item["position"], item["reason"]) for item in result["rejected"]] == [
        (4, "duplicate of position 2"),
        (5, "missing ':' between model number and UUID (expected ModelNo:UUID)"),
        (6, "missing ':' between model number and UUID (expected ModelNo:UUID)"),
    ]


@pytest.mark.parametrize(("case", "body", "status", "code"), [
    ("latin1", UNREADABLE[0][1], 400, "unreadable_csv"),
    ("header_only", b"product_id\n", 400, "empty_csv"),
])
def test_vendor_allocate_bad_csv_rejected(world, case, body, status, code):
    before = snapshot(world)

    response = vendor_client(world).post(f"/api/v1/vendor/msps/{world.a.msp.slug}/allocate", body,
                                         content_type="text/csv")

    assert_error(response, status, code)
    assert snapshot(world) == before


def test_vendor_allocate_reports_formula_rows(world):
    before = snapshot(world)

    response = vendor_client(world).post(f"/api/v1/vendor/msps/{world.a.msp.slug}/allocate", _rows(*FORMULAS),
                                         content_type="text/csv")

    assert response.status_code == 200
    assert [item["position"] for item in response.json()["rejected"]] == [1, 2, 3, 4, 5]
    assert snapshot(world) == before


# The MSP portal's upload form: multipart, up to msp.forms.MAX_CSV_BYTES.


def _portal_claim(world, content: bytes):
    client = Client(HTTP_HOST="localhost")
    client.force_login(world.a.msp_user)
    upload = SimpleUploadedFile("claim.csv", content, content_type="text/csv")
    return client.post(PORTAL_CLAIM_URL, {"csv_file": upload})


@pytest.mark.parametrize(("case", "content", "message"), [
    ("empty_file", b"", "The submitted file is empty."),
    ("binary", bytes(range(256)) * 4, "The CSV cannot be read"),
    ("latin1", UNREADABLE[0][1], "The CSV cannot be read: line 2 is not valid UTF-8"),
    ("header_only", b"product_id\r\n", "No Product IDs found"),
    ("field_over_csv_limit", b"EC100:" + b"a" * (1024 * 1024 + 1) + b"\n", "The CSV cannot be read"),
    ("file_over_size_limit", _rows(new_product_id()) * (MAX_CSV_BYTES // 40), "more than the limit"),
])
def test_portal_claim_bad_file_rejected(world, case, content, message):
    before = snapshot(world)

    response = _portal_claim(world, content)

    assert response.status_code == 400
    errors = response.context["form"].errors["csv_file"]
    assert len(errors) == 1
    assert errors[0].startswith(message) or message in errors[0], errors
    assert snapshot(world) == before


def test_portal_claim_reports_formula_rows(world):
    before = snapshot(world)

    response = _portal_claim(world, _rows(*FORMULAS))

    assert response.status_code == 200
    table = response.context["table"]
    assert [(row.position, row.value, row.rejected) for row in table.rows] == [
        (line, value, True) for line, value in enumerate(FORMULAS, start=1)
    ]
    assert "=cmd()" in response.content.decode()
    assert snapshot(world) == before


# The vendor's bulk import (manage.py import_products).


def _import(tmp_path, content: bytes, *args: str) -> str:
    path = tmp_path / "products.csv"
    path.write_bytes(content)
    output = io.StringIO()
    call_command("import_products", str(path), *args, stdout=output, stderr=io.StringIO())
    return output.getvalue()


@pytest.mark.parametrize(("case", "body"), UNREADABLE, ids=[case for case, _ in UNREADABLE])
def test_import_unreadable_file_imports_nothing(world, tmp_path, case, body):
    before = snapshot(world)

    with pytest.raises(CommandError, match="Nothing was imported"):
        _import(tmp_path, body)

    assert snapshot(world) == before


@pytest.mark.parametrize(("case", "body", "lines"), [case for case in BAD_ROWS if case[0] != "unknown_products"],
                         ids=[case for case, _, _ in BAD_ROWS if case != "unknown_products"])
def test_import_reports_every_bad_row(world, tmp_path, case, body, lines):
    from provisioning.models import Product

    products_before = Product.objects.count()

    output = _import(tmp_path, body)

    assert Product.objects.count() == products_before
    for line in lines:
        assert f"line {line}: " in output, output


def test_import_error_report_neutralises_formulas(world, tmp_path):
    errors = tmp_path / "errors.csv"

    _import(tmp_path, _rows(*FORMULAS, new_product_id()), "--errors", str(errors))

    rows = list(csv.reader(errors.open(newline="")))
    assert rows[0] == ["line", "value", "reason"]
    assert [row[1] for row in rows[1:]] == ["'" + value for value in FORMULAS]


def test_import_keeps_good_rows_among_bad(world, tmp_path):
    from provisioning.models import Product

    good = new_product_id()
    body = codecs.BOM_UTF8 + f"product_id\r\n{good}\r\n{good.lower()}\r\n=cmd()\r\n\x00\r\n".encode()

    output = _import(tmp_path, body)

    assert Product.objects.filter(product_id=good).exists()
    assert "line 3: " in output
    assert "duplicate of line 2" in output
    assert "line 4: " in output
    assert "line 5: " in output
