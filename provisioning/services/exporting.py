"""Exporting products in the manufacturing CSV format that the import reads."""

from __future__ import annotations

from typing import BinaryIO

from django.db import connection
from psycopg import sql

EXPORT_COLUMNS = ["product_id", "serial", "public_key", "secret_sha256"]


def export_products(output: BinaryIO, *, msp=None, state: str | None = None, model_number: str | None = None,
                    include_secret_hashes: bool = False) -> int:
    """Write matching products as CSV to ``output``; return the number of products written.

    Streams with ``COPY ... TO STDOUT``, so memory stays flat for millions of
    rows. Public keys are written as PEM; the CSV quoting keeps their line breaks.

    The ``secret_sha256`` column stays empty unless ``include_secret_hashes``:
    the stored hash keys the lookup's proof of possession, so whoever reads it
    can answer a device's challenges. An empty cell changes nothing when the
    file is imported again.
    """
    conditions = [sql.SQL("TRUE")]
    if msp is not None:
        conditions.append(sql.SQL("msp_id = {}").format(sql.Literal(msp.pk)))
    if state:
        conditions.append(sql.SQL("state = {}").format(sql.Literal(state)))
    if model_number:
        conditions.append(sql.SQL("model_number = {}").format(sql.Literal(model_number.upper())))
    query = sql.SQL(
        "COPY (SELECT product_id, serial_number, "
        "CASE WHEN credential_type = 'public_key' THEN credential ELSE '' END, "
        "CASE WHEN credential_type = 'secret_sha256' AND {} THEN credential ELSE '' END "
        "FROM provisioning_product WHERE {} ORDER BY id) TO STDOUT WITH (FORMAT csv)"
    ).format(sql.Literal(include_secret_hashes), sql.SQL(" AND ").join(conditions))

    output.write((",".join(EXPORT_COLUMNS) + "\n").encode())
    with connection.cursor() as wrapper:
        with wrapper.cursor.copy(query) as copy:
            for block in copy:
                output.write(block)
        # COPY reports the rows it wrote; lines would over-count multi-line PEM keys.
        return wrapper.cursor.rowcount
