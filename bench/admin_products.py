"""Benchmark the vendor admin's product changelist (/admin/provisioning/product/) on a large product table.

Run from the project root:

    python bench/admin_products.py [--rows N] [--repeat R] [--explain]

In a database of its own it inserts N products (default 1,000,000) with one
``INSERT ... SELECT generate_series`` statement, runs VACUUM ANALYZE, and
logs a staff user in with Django's test Client (host ``localhost``). It then
requests page 1, page 100 (or the last page of a smaller table), a search by
a full Product ID, a search by UUID prefix (``?q=EC100:7c9e``) and filters
by state (disabled: 1% of the products, decommissioned: 0.1%). For each page
it prints the number of SQL queries, the time per request (median and
maximum of R warm requests) and the slowest statement. ``--explain`` also
prints EXPLAIN ANALYZE for every statement slower than ``--explain-ms``.

Targets: every page under 0.5 s (median), and no ``SELECT COUNT(*)`` over
a whole table (a COUNT with neither WHERE nor LIMIT).
"""

from __future__ import annotations

import argparse
import math
import re
import secrets
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import benchlib

MAX_PAGE_SECONDS = 0.5
DEEP_PAGE = 100
CHANGELIST = "/admin/provisioning/product/"
UUID_PREFIX_SEARCH = "EC100:7c9e"
FULL_COUNT = re.compile(r"^\s*SELECT\s+COUNT\(\*\)", re.IGNORECASE)

# Every 10th product is an EC200, every 100th disabled and every 1000th
# decommissioned. Every 4th is allocated to the bench MSP, and every 8th is
# also claimed and mapped to its tenant registration.
# ("%%" is the modulo operator, doubled because the statement has parameters.)
INSERT_PRODUCTS = """
    INSERT INTO provisioning_product
        (product_id, model_number, uuid, state, created_at, last_facts, serial_number, credential_type,
         credential, metadata, msp_id, allocated_at, claimed_at, tenant_registration_id, mapped_at)
    SELECT model || ':' || id, model, id, state, now() - make_interval(secs => n), '{}',
           'SN' || lpad(n::text, 9, '0'), '', '', '{}',
           CASE WHEN n %% 4 = 0 THEN %(msp)s END, CASE WHEN n %% 4 = 0 THEN now() END,
           CASE WHEN n %% 8 = 0 THEN now() END, CASE WHEN n %% 8 = 0 THEN %(registration)s END,
           CASE WHEN n %% 8 = 0 THEN now() END
    FROM (
        SELECT n, gen_random_uuid() AS id,
               CASE WHEN n %% 10 = 0 THEN 'EC200' ELSE 'EC100' END AS model,
               CASE WHEN n %% 100 = 0 THEN 'disabled' WHEN n %% 1000 = 1 THEN 'decommissioned'
                    ELSE 'active' END AS state
        FROM generate_series(1, %(rows)s) AS n
    ) AS generated
"""


@dataclass
class PageResult:
    name: str
    url: str
    seconds: list[float] = field(default_factory=list)
    query_counts: list[int] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    full_counts: list[str] = field(default_factory=list)
    slowest: tuple[float, str] = (-1.0, "")
    slow_statements: dict[str, float] = field(default_factory=dict)
    expected_text: str | None = None
    found_expected: bool = True
    rows_shown: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="products to insert (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed requests per page (default 3)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of slow statements")
    parser.add_argument("--explain-ms", type=float, default=50,
                        help="with --explain, the statement time in milliseconds above which to explain (default 50)")
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    return args


def seed(rows: int) -> str:
    """Insert ``rows`` products with SQL, VACUUM ANALYZE them, and return a Product ID from the middle."""
    from django.db import connection

    from audit.services import Actor
    from msp.services.accounts import create_msp
    from msp.services.registrations import register_tenant

    actor = Actor.system("bench")
    msp = create_msp("Bench MSP", slug="bench", actor=actor)
    registration = register_tenant(msp, name="Bench tenant", management_url="http://bench.localhost:8000",
                                   access_key=secrets.token_urlsafe(32), actor=actor)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(INSERT_PRODUCTS, {"rows": rows, "msp": msp.pk, "registration": registration.pk})
        print(f"inserted {rows:,} products in {time.monotonic() - started:.1f} s", flush=True)
        started = time.monotonic()
        # A table that has been in use has its visibility map and statistics, but a fresh bulk insert has neither.
        cursor.execute("VACUUM ANALYZE provisioning_product")
        print(f"VACUUM ANALYZE in {time.monotonic() - started:.1f} s", flush=True)
        cursor.execute("SELECT product_id FROM provisioning_product ORDER BY id OFFSET %s LIMIT 1", [rows // 2])
        return cursor.fetchone()[0]


def products_per_page() -> int:
    from django.contrib import admin

    from provisioning.models import Product

    return admin.site._registry[Product].list_per_page


def logged_in_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    password = secrets.token_urlsafe(16)
    get_user_model().objects.create_superuser("bench-admin", password=password)
    client = Client(HTTP_HOST="localhost")
    if not client.login(username="bench-admin", password=password):
        raise SystemExit("logging in the staff user bench-admin failed")
    return client


def measure(client, page: PageResult, repeat: int, explain_ms: float) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(page.url)
            page.seconds.append(time.perf_counter() - started)
        page.statuses.add(response.status_code)
        page.query_counts.append(len(queries))
        content = response.content.decode()
        # Each listed product has one selection checkbox.
        page.rows_shown = content.count('name="_selected_action"')
        if page.expected_text is not None and page.expected_text not in content:
            page.found_expected = False
        for query in queries.captured_queries:
            sql, seconds = query["sql"], float(query["time"])
            if seconds > page.slowest[0]:
                page.slowest = (seconds, sql)
            if is_full_count(sql) and sql not in page.full_counts:
                page.full_counts.append(sql)
            if seconds * 1000 > explain_ms:
                page.slow_statements[sql] = max(seconds, page.slow_statements.get(sql, 0.0))


def is_full_count(sql: str) -> bool:
    """Return whether ``sql`` counts every row of a table: a COUNT(*) with neither WHERE nor LIMIT.

    A COUNT over a subquery with LIMIT (a capped count) reads at most that many rows, so it does not count.
    """
    upper = sql.upper()
    return bool(FULL_COUNT.match(sql)) and " WHERE " not in upper and " LIMIT " not in upper


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        # Django binds parameters on the client by default (psycopg 3), so the captured SQL contains their values.
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    args = parse_args()
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/admin_products.py: product changelist with {args.rows:,} products")
    with benchlib.BenchDatabase():
        product_id = seed(args.rows)
        client = logged_in_client()
        # Page 100, or the last page of a smaller table (Django's admin redirects a page past the end).
        deep_page = min(DEEP_PAGE, math.ceil(args.rows / products_per_page()))
        pages = [
            PageResult("page 1", CHANGELIST),
            PageResult(f"page {deep_page}", f"{CHANGELIST}?{urlencode({'p': deep_page})}"),
            PageResult("search full Product ID", f"{CHANGELIST}?{urlencode({'q': product_id})}",
                       expected_text=product_id),
            PageResult("search UUID prefix", f"{CHANGELIST}?{urlencode({'q': UUID_PREFIX_SEARCH})}"),
            PageResult("filter state=disabled", f"{CHANGELIST}?{urlencode({'state__exact': 'disabled'})}"),
            # Decommissioned products (0.1%) are rarer than disabled ones (1%), so a count capped at a
            # number of rows reads further before it stops.
            PageResult("filter decommissioned",
                       f"{CHANGELIST}?{urlencode({'state__exact': 'decommissioned'})}"),
        ]
        # The first request loads templates and the admin's URL patterns, so it is reported but not judged.
        started = time.perf_counter()
        first = client.get(CHANGELIST)
        print(f"first request (cold): {time.perf_counter() - started:.2f} s, status {first.status_code}", flush=True)
        for page in pages:
            measure(client, page, args.repeat, args.explain_ms)
        plans = {sql: explain(sql) for page in pages for sql in page.slow_statements} if args.explain else {}
    print_results(args, pages, plans)


def print_results(args, pages: list[PageResult], plans: dict[str, str]) -> None:
    print()
    print(f"results ({args.rows:,} products, {args.repeat} warm requests per page)")
    for page in pages:
        counts = sorted(set(page.query_counts))
        count_text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        print(f"  {page.name:<24} {page.url}")
        print(f"      status {sorted(page.statuses)}, {page.rows_shown} rows shown, {count_text} queries, "
              f"median {page.median:.3f} s, "
              f"max {max(page.seconds):.3f} s, slowest statement {page.slowest[0] * 1000:.0f} ms: "
              f"{page.slowest[1][:200]}")
        if page.expected_text is not None:
            print(f"      searched Product ID on the page: {'yes' if page.found_expected else 'NO'}")
        for sql in page.full_counts:
            print(f"      full-table COUNT(*): {sql[:200]}")

    print()
    print("targets")
    for page in pages:
        ok = page.statuses == {200} and page.found_expected
        print(f"  {page.name:<24} median {page.median:.3f} s (target < {MAX_PAGE_SECONDS} s)   "
              f"{benchlib.verdict(ok and page.median < MAX_PAGE_SECONDS)}")
    for page in pages:
        print(f"  {page.name:<24} full-table COUNT(*): {'yes' if page.full_counts else 'no'} (target: no)   "
              f"{benchlib.verdict(not page.full_counts)}")

    if plans:
        print()
        print(f"EXPLAIN ANALYZE of statements slower than {args.explain_ms:g} ms")
        for sql, plan in plans.items():
            print(f"--- {sql[:300]}")
            print(plan)


if __name__ == "__main__":
    main()
