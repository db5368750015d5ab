"""The database stores no secret of the flow in clear: keys and tokens as keyed hashes, the rest encrypted.

Every row of every table in the public schema and in the schemas of both
tenants the flow created is read as JSON and searched.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.secrets.scanning import find_secrets

pytestmark = pytest.mark.e2e

# The session table's primary key is the session id itself.
SESSION_TABLE = "django_session"


def _tables(schema_name: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                       "AND table_type = 'BASE TABLE' ORDER BY table_name", [schema_name])
        return [row[0] for row in cursor.fetchall()]


def _rows_as_text(schema_name: str, table: str) -> str:
    quoted = f"{connection.ops.quote_name(schema_name)}.{connection.ops.quote_name(table)}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT row_to_json(t)::text FROM {quoted} AS t")  # noqa: S608 - names from the catalogue
        return "\n".join(row[0] for row in cursor.fetchall())


def test_database_stores_no_secret_in_clear(secret_flow, committed):
    all_needles = secret_flow.registry.needles
    without_session_ids = [needle for needle in all_needles if "session id" not in needle.kind]
    findings = []
    schemas = ("public", secret_flow.schema_name, secret_flow.background_schema_name)
    for schema_name in schemas:
        tables = _tables(schema_name)
        assert tables, f"schema {schema_name} has no tables"
        for table in tables:
            needles = without_session_ids if table == SESSION_TABLE else all_needles
            findings += find_secrets(_rows_as_text(schema_name, table), needles, where=f"{schema_name}.{table}")

    assert not findings, "secrets found:\n" + "\n".join(findings)
