"""Benchmark the manufacturing CSV import against a raw PostgreSQL COPY of the same file.

Run from the project root:

    python bench/import_products.py [--rows N] [--rounds R]

It writes a CSV of N Product IDs (``product_id,serial``, default 1,000,000)
to a temporary folder and, in a database of its own:

1. baseline: COPYs the file into ``bench_raw``, a table with the columns,
   defaults and indexes of ``provisioning_product``, and times only the COPY;
2. runs the ``import_products FILE`` management command in a child process
   under ``/usr/bin/time -v`` for its peak resident set size (RSS), and
   times the command from its start to its commit;
3. repeats both R times (default 2) in alternating order, emptying the
   product table before each import, so each starts from an empty table;
4. runs the same import again, which must insert nothing.

Targets: the fastest import at most 1.5x the fastest COPY, and peak RSS
under 300 MB.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import benchlib

MAX_TIME_RATIO = 1.5
MAX_RSS_MB = 300
# Bytes per write to the COPY stream.
COPY_CHUNK_BYTES = 1024 * 1024
# Upper bound on one import subprocess (seconds), so a hung import cannot hold the run.
IMPORT_TIMEOUT = 1800
TIME_BINARY = "/usr/bin/time"

# The import derives these columns from the Product ID. bench_raw generates
# them from it, so their indexes contain the same values.
GENERATED_COLUMNS = """
    ALTER TABLE bench_raw
        DROP COLUMN model_number,
        DROP COLUMN uuid,
        ADD COLUMN model_number varchar(32) NOT NULL GENERATED ALWAYS AS (split_part(product_id, ':', 1)) STORED,
        ADD COLUMN uuid uuid NOT NULL GENERATED ALWAYS AS (split_part(product_id, ':', 2)::uuid) STORED
"""
# Values the import writes to the NOT NULL columns that the file does not have.
COLUMN_DEFAULTS = {
    "state": "'active'",
    "created_at": "now()",
    "last_facts": "'{}'::jsonb",
    "credential_type": "''",
    "credential": "''",
    "metadata": "'{}'::jsonb",
}
FILE_COLUMNS = ("product_id", "serial_number")


@dataclass
class ImportRun:
    wall_seconds: float
    import_seconds: float
    reported_seconds: float
    peak_rss_mb: float | None
    rows: int
    inserted: int
    unchanged: int
    rejected: int
    exit_code: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Product IDs in the CSV (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="times to run the COPY and the import each, alternating their order (default 2)")
    parser.add_argument("--child-import", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 1 or args.rounds < 1:
        parser.error("--rows and --rounds must be at least 1")
    return args


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as file:
        file.write("product_id,serial\n")
        for number in range(1, rows + 1):
            file.write(f"EC100:{uuid.uuid4()},SN{number:09d}\n")


def create_raw_table(cursor) -> None:
    """Create bench_raw like provisioning_product: same columns, defaults, constraints and indexes."""
    cursor.execute("DROP TABLE IF EXISTS bench_raw")
    cursor.execute("CREATE TABLE bench_raw (LIKE provisioning_product INCLUDING ALL)")
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes "
                   "WHERE schemaname = current_schema() AND tablename = 'bench_raw'")
    indexes = cursor.fetchall()
    # Dropping the two columns drops their indexes, so they are created again below on the generated columns.
    cursor.execute(GENERATED_COLUMNS)
    cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'bench_raw'")
    remaining = {row[0] for row in cursor.fetchall()}
    for name, definition in indexes:
        if name not in remaining:
            cursor.execute(definition)

    for column, default in COLUMN_DEFAULTS.items():
        cursor.execute(f"ALTER TABLE bench_raw ALTER COLUMN {column} SET DEFAULT {default}")
    cursor.execute("""
        SELECT column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'bench_raw' AND is_nullable = 'NO'
          AND column_default IS NULL AND is_identity = 'NO' AND is_generated = 'NEVER'
    """)
    missing = sorted({row[0] for row in cursor.fetchall()} - set(FILE_COLUMNS))
    if missing:
        raise SystemExit(f"provisioning_product has NOT NULL columns without a default that the CSV lacks: "
                         f"{', '.join(missing)}. Add them to COLUMN_DEFAULTS in {__file__}.")


def time_raw_copy(bench: benchlib.BenchDatabase, csv_path: Path) -> tuple[float, int]:
    """COPY the CSV into bench_raw; return the seconds of the COPY and its commit, and the rows loaded."""
    import psycopg

    with psycopg.connect(bench.libpq_url()) as connection:
        with connection.cursor() as cursor:
            create_raw_table(cursor)
            connection.commit()
            benchlib.checkpoint(cursor)
            connection.commit()

            started = time.perf_counter()
            columns = ", ".join(FILE_COLUMNS)
            with cursor.copy(f"COPY bench_raw ({columns}) FROM STDIN (FORMAT csv, HEADER true)") as copy:
                with open(csv_path, "rb") as file:
                    while chunk := file.read(COPY_CHUNK_BYTES):
                        copy.write(chunk)
            loaded = cursor.rowcount
            connection.commit()
            seconds = time.perf_counter() - started

            cursor.execute("DROP TABLE bench_raw")
            connection.commit()
    return seconds, loaded


def run_import(csv_path: Path, label: str) -> ImportRun:
    """Run the import command in a child process (see child_import); read its figures from the batch row."""
    from django.db import connection

    from provisioning.models import ImportBatch

    with connection.cursor() as wrapper:
        benchlib.checkpoint(wrapper.cursor)
    connection.close()

    # The child inherits DATABASE_URL, which now names the bench database.
    command = [sys.executable, __file__, "--child-import", str(csv_path)]
    use_time = Path(TIME_BINARY).exists()
    if use_time:
        command = [TIME_BINARY, "-v", *command]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=benchlib.PROJECT_DIR, capture_output=True, text=True,
                            timeout=IMPORT_TIMEOUT, check=False)
    wall_seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(f"{label}: the import exited with {result.returncode}:\n{result.stdout[-2000:]}\n"
              f"{result.stderr[-3000:]}", file=sys.stderr)

    if use_time:
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
        peak_rss_mb = int(match.group(1)) / 1024 if match else None
    else:
        # NOTE: ru_maxrss of RUSAGE_CHILDREN is the maximum over every child waited for so far,
        # so a second import reports at least the first one's peak.
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    match = re.search(r"^child-import-seconds: ([0-9.]+)$", result.stdout, re.MULTILINE)
    batch = ImportBatch.objects.order_by("-pk").first()
    if match is None or batch is None:
        raise SystemExit(f"{label}: the import did not finish; see its output above.")
    summary = [line for line in result.stdout.splitlines() if line.startswith("Import batch")]
    print(f"{label}: {summary[-1] if summary else '(no summary line)'}", flush=True)
    return ImportRun(wall_seconds=wall_seconds, import_seconds=float(match.group(1)),
                     reported_seconds=batch.seconds, peak_rss_mb=peak_rss_mb, rows=batch.rows,
                     inserted=batch.inserted, unchanged=batch.unchanged, rejected=batch.rejected,
                     exit_code=result.returncode)


def child_import(csv_path: str) -> None:
    """Run `manage.py import_products FILE` in this process and print its time, commit included.

    The command's own "in N s" figure stops before the commit, so it leaves
    out the foreign key checks that PostgreSQL defers to the commit (Django
    creates foreign keys DEFERRABLE INITIALLY DEFERRED). Timing the call
    here includes them and leaves out only Python start-up and django.setup().
    """
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    started = time.perf_counter()
    call_command("import_products", csv_path)
    print(f"child-import-seconds: {time.perf_counter() - started:.3f}", flush=True)


def truncate_products() -> None:
    """Empty provisioning_product, so that the next import starts from an empty table like the first."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE provisioning_product")


def measure_rounds(bench: benchlib.BenchDatabase, csv_path: Path, rounds: int
                   ) -> tuple[list[float], list[ImportRun], ImportRun]:
    """Time the raw COPY and the import ``rounds`` times each, then the re-import; return all three."""
    copy_times: list[float] = []
    imports: list[ImportRun] = []
    for number in range(1, rounds + 1):
        # Odd rounds run the COPY first, even rounds the import, so drift in the machine's load hits both.
        steps = ("copy", "import") if number % 2 else ("import", "copy")
        for step in steps:
            if step == "copy":
                seconds, copied = time_raw_copy(bench, csv_path)
                copy_times.append(seconds)
                print(f"round {number}: raw COPY of {copied:,} rows in {seconds:.2f} s", flush=True)
            else:
                if imports:
                    truncate_products()
                imports.append(run_import(csv_path, f"round {number}: import"))
    reimport = run_import(csv_path, "re-import")
    return copy_times, imports, reimport


def main() -> None:
    args = parse_args()
    if args.child_import:
        child_import(args.child_import)
        return
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/import_products.py: import of {args.rows:,} Product IDs, {args.rounds} rounds")
    if not Path(TIME_BINARY).exists():
        print(f"note: {TIME_BINARY} not found, so peak RSS comes from getrusage(RUSAGE_CHILDREN)")

    folder = Path(tempfile.mkdtemp(prefix="ztsp-bench-import-"))
    try:
        csv_path = folder / "products.csv"
        started = time.perf_counter()
        write_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1024 / 1024
        print(f"CSV: {args.rows:,} rows, {size_mb:.1f} MiB, written in {time.perf_counter() - started:.1f} s "
              f"to {csv_path}", flush=True)

        with benchlib.BenchDatabase() as bench:
            copy_times, imports, reimport = measure_rounds(bench, csv_path, args.rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print_results(args.rows, copy_times, imports, reimport)


def print_results(rows: int, copy_times: list[float], imports: list[ImportRun], reimport: ImportRun) -> None:
    print()
    print("results (seconds; each import timed from the command's start to its commit)")
    for number, (copy_seconds, run) in enumerate(zip(copy_times, imports, strict=True), start=1):
        print(f"  round {number}: raw COPY {copy_seconds:6.2f} s ({rows / copy_seconds:,.0f} rows/s), "
              f"import {run.import_seconds:6.2f} s ({rows / run.import_seconds:,.0f} rows/s), "
              f"ratio {run.import_seconds / copy_seconds:.2f}x   "
              f"(command's own figure {run.reported_seconds:.2f} s, process wall time {run.wall_seconds:.2f} s)")
    print(f"  re-import of the same file: {reimport.import_seconds:.2f} s "
          f"(command's own figure {reimport.reported_seconds:.2f} s, process wall time {reimport.wall_seconds:.2f} s)")
    last = imports[-1]
    print(f"  last import: {last.inserted:,} inserted, {last.unchanged:,} unchanged, {last.rejected:,} rejected; "
          f"re-import: {reimport.inserted:,} inserted, {reimport.unchanged:,} unchanged, "
          f"{reimport.rejected:,} rejected")

    complete = all(run.exit_code == 0 and run.inserted == rows and run.rejected == 0 for run in imports)
    print(f"  check: every import inserted every row                {verdict_text(complete)}")
    idempotent = reimport.exit_code == 0 and reimport.inserted == 0 and reimport.unchanged == rows
    print(f"  check: re-import inserted nothing                     {verdict_text(idempotent)}")

    # The fastest run of each is the one least disturbed by other work on the machine.
    best_copy = min(copy_times)
    best_import = min(run.import_seconds for run in imports)
    ratio = best_import / best_copy
    print()
    print("targets")
    print(f"  fastest import / fastest COPY = {best_import:.2f} s / {best_copy:.2f} s = {ratio:.2f}x "
          f"(target <= {MAX_TIME_RATIO}x)   {benchlib.verdict(complete and ratio <= MAX_TIME_RATIO)}")
    for label, run in [*((f"import {number}", run) for number, run in enumerate(imports, start=1)),
                       ("re-import", reimport)]:
        if run.peak_rss_mb is None:
            print(f"  peak RSS of {label}: not measured (no figure in the time -v output)   MISS")
        else:
            passed = run.exit_code == 0 and run.peak_rss_mb < MAX_RSS_MB
            print(f"  peak RSS of {label} = {run.peak_rss_mb:.0f} MB (target < {MAX_RSS_MB} MB)   "
                  f"{benchlib.verdict(passed)}")


def verdict_text(passed: bool) -> str:
    return "ok" if passed else "FAILED"


if __name__ == "__main__":
    main()
