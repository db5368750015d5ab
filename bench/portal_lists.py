"""Benchmark the list pages of the MSP portal and the Director tenant portal on large tables.

Run from the project root:

    python bench/portal_lists.py [--rows N] [--repeat R] [--hops H]

In a database of its own it creates one MSP with one hosted Director tenant,
then inserts with ``INSERT ... SELECT generate_series``:

- N claimed products of the MSP in the public schema (default 100,000), every
  2nd mapped to the tenant;
- N ECs in the tenant's schema, with one onboard request each. Every 10th EC
  is pending, every 50th rejected, every 100th decommissioned and the rest
  onboarded. A third are online, a third offline and a third never connected.
  Tag "berlin" is on every 7th EC, "paris" on every 13th and "lab" on every 101st.

It then runs VACUUM ANALYZE, signs in an MSP user and a tenant admin with
Django's test Client, and requests each page R times (after one untimed
request) inside ``CaptureQueriesContext``. A "later page" is reached by
following the page's own next link H times. For each page it prints the
number of SQL statements, the median and maximum time and the slowest
statement.

Targets: every page under 0.5 s (median), and no ``SELECT COUNT(*)`` over a
whole table (a COUNT with neither WHERE nor LIMIT).
"""

from __future__ import annotations

import argparse
import html
import re
import secrets
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import benchlib
from admin_products import is_full_count

MAX_PAGE_SECONDS = 0.5
MSP_PORTAL = "localhost"
TENANT_SCHEMA = "bench"
TENANT_HOST = "bench.localhost"

# ("%%" is the modulo operator, doubled because the statements have parameters.)
INSERT_PRODUCTS = """
    INSERT INTO provisioning_product
        (product_id, model_number, uuid, state, created_at, last_facts, serial_number, credential_type,
         credential, metadata, msp_id, allocated_at, claimed_at, tenant_registration_id, mapped_at)
    SELECT 'EC100:' || id, 'EC100', id, 'active', now() - make_interval(secs => n), '{}',
           'SN' || lpad(n::text, 9, '0'), '', '', '{}', %(msp)s, now(), now(),
           CASE WHEN n %% 2 = 0 THEN %(registration)s END, CASE WHEN n %% 2 = 0 THEN now() END
    FROM (SELECT n, gen_random_uuid() AS id FROM generate_series(1, %(rows)s) AS n) AS generated
"""

INSERT_CONTROLLERS = """
    INSERT INTO {schema}.onboarding_edgecontroller
        (product_id, state, facts, first_seen_at, last_seen_at, online, tunnel_connected_at,
         tunnel_disconnected_at, last_heartbeat_at, firmware, applied_config_version)
    SELECT 'EC100:' || gen_random_uuid(),
           CASE WHEN n %% 10 = 0 THEN 'pending' WHEN n %% 50 = 1 THEN 'rejected'
                WHEN n %% 100 = 3 THEN 'decommissioned' ELSE 'onboarded' END,
           '{{"firmware": "1.2.0"}}', now() - make_interval(secs => %(rows)s - n), now(),
           n %% 3 = 0,
           CASE WHEN n %% 3 <> 2 THEN now() - interval '1 hour' END,
           CASE WHEN n %% 3 = 1 THEN now() - interval '10 minutes' END,
           CASE WHEN n %% 3 = 0 THEN now() END, '1.2.0', 0
    FROM generate_series(1, %(rows)s) AS n
"""

# One request per EC, in EC order, with the status its EC's state implies.
INSERT_REQUESTS = """
    INSERT INTO {schema}.onboarding_onboardrequest
        (id, edge_controller_id, product_id, csr_pem, csr_fingerprint, facts, status, conflict, created_at,
         decided_by, decision_note)
    SELECT gen_random_uuid(), id, product_id, '-', md5(product_id) || md5(product_id), '{{}}',
           CASE state WHEN 'pending' THEN 'pending' WHEN 'onboarded' THEN 'issued' ELSE 'rejected' END,
           false, first_seen_at, '', ''
    FROM {schema}.onboarding_edgecontroller
"""

TAGS = {"berlin": 7, "paris": 13, "lab": 101}

INSERT_TAGGINGS = """
    INSERT INTO {schema}.onboarding_edgecontroller_tags (edgecontroller_id, tag_id)
    SELECT id, %(tag)s FROM {schema}.onboarding_edgecontroller WHERE id %% %(every)s = 0
"""


@dataclass
class PageResult:
    portal: str
    name: str
    url: str = ""
    seconds: list[float] = field(default_factory=list)
    query_counts: list[int] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    full_counts: list[str] = field(default_factory=list)
    counts: int = 0
    slowest: tuple[float, str] = (-1.0, "")
    rows_shown: int = 0
    expected_text: str | None = None
    found_expected: bool = True

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000,
                        help="products, and also ECs, to insert (default 100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed requests per page (default 3)")
    parser.add_argument("--hops", type=int, default=50,
                        help="next links to follow to reach the later page (default 50)")
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1 or args.hops < 1:
        parser.error("--rows, --repeat and --hops must be at least 1")
    return args


@dataclass
class Seeded:
    msp_username: str
    tenant_admin: str
    password: str
    product_id: str
    controller_product_id: str


def seed(rows: int) -> Seeded:
    """Create the MSP, its tenant and the rows; return the sign-in names and a Product ID of each table."""
    from django.db import connection

    from audit.services import Actor
    from msp.services.accounts import add_msp_user, create_msp
    from msp.services.registrations import register_tenant
    from onboarding.models import Tag
    from tenants.services import create_hosted_tenant, create_tenant_admin, management_url_for

    actor = Actor.system("bench")
    password = secrets.token_urlsafe(16)
    started = time.monotonic()
    msp = create_msp("Bench MSP", slug="bench", actor=actor)
    add_msp_user(msp, "bench-msp-user", actor=actor, password=password)
    tenant, access_key = create_hosted_tenant(name="Bench", schema_name=TENANT_SCHEMA, domain=TENANT_HOST,
                                              actor=actor, owner_msp=msp)
    create_tenant_admin(tenant, "bench-admin", password, actor=actor)
    registration = register_tenant(msp, name="Bench", management_url=management_url_for(TENANT_HOST),
                                   access_key=access_key, actor=actor)
    print(f"created the MSP and its tenant in {time.monotonic() - started:.1f} s", flush=True)

    schema = connection.ops.quote_name(TENANT_SCHEMA)
    with connection.cursor() as cursor:
        started = time.monotonic()
        cursor.execute(INSERT_PRODUCTS, {"rows": rows, "msp": msp.pk, "registration": registration.pk})
        print(f"inserted {rows:,} claimed products in {time.monotonic() - started:.1f} s", flush=True)

        started = time.monotonic()
        cursor.execute(INSERT_CONTROLLERS.format(schema=schema), {"rows": rows})
        cursor.execute(INSERT_REQUESTS.format(schema=schema))
        from django_tenants.utils import schema_context

        with schema_context(TENANT_SCHEMA):
            tag_ids = {name: Tag.objects.create(name=name).pk for name in TAGS}
        for name, every in TAGS.items():
            cursor.execute(INSERT_TAGGINGS.format(schema=schema), {"tag": tag_ids[name], "every": every})
        print(f"inserted {rows:,} ECs, their onboard requests and tags in {time.monotonic() - started:.1f} s",
              flush=True)

        started = time.monotonic()
        # A table in use has its visibility map and statistics, but a fresh bulk insert has neither.
        for table in ("provisioning_product", f"{schema}.onboarding_edgecontroller",
                      f"{schema}.onboarding_onboardrequest", f"{schema}.onboarding_edgecontroller_tags"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        print(f"VACUUM ANALYZE in {time.monotonic() - started:.1f} s", flush=True)

        cursor.execute("SELECT product_id FROM provisioning_product ORDER BY id OFFSET %s LIMIT 1", [rows // 2])
        product_id = cursor.fetchone()[0]
        # The schema name is the constant TENANT_SCHEMA, quoted above.
        cursor.execute(f"SELECT product_id FROM {schema}.onboarding_edgecontroller "  # noqa: S608
                       "WHERE state = 'onboarded' ORDER BY id OFFSET %s LIMIT 1", [rows // 3])
        controller_product_id = cursor.fetchone()[0]
    return Seeded("bench-msp-user", "bench-admin", password, product_id, controller_product_id)


def signed_in(host: str, login_url: str, username: str, password: str):
    from django.test import Client

    client = Client(HTTP_HOST=host)
    response = client.post(login_url, {"username": username, "password": password})
    if response.status_code != 302:
        raise SystemExit(f"signing in {username} at {host}{login_url} failed: status {response.status_code}")
    return client


def follow_next(client, url: str, link_id: str | None, hops: int) -> str:
    """Follow the next link of ``url`` ``hops`` times (untimed) and return the URL reached."""
    path = url.split("?")[0]
    pattern = (rf'<a href="([^"]+)" rel="next" id="{link_id}">' if link_id
               else r'<a href="([^"]+)" rel="next">')
    for hop in range(hops):
        match = re.search(pattern, client.get(url).content.decode())
        if match is None:
            print(f"note: {url} has no next link after {hop} hops; measuring that page", flush=True)
            return url
        url = path + html.unescape(match.group(1))
    return url


def measure(client, page: PageResult, repeat: int, count_rows) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(page.url)  # Not judged: the first request of a URL may load templates and warm caches.
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(page.url)
            page.seconds.append(time.perf_counter() - started)
        page.statuses.add(response.status_code)
        page.query_counts.append(len(queries))
        content = response.content.decode()
        page.rows_shown = count_rows(content)
        if page.expected_text is not None and page.expected_text not in content:
            page.found_expected = False
        for query in queries.captured_queries:
            sql, seconds = query["sql"], float(query["time"])
            if seconds > page.slowest[0]:
                page.slowest = (seconds, sql)
            if re.match(r"^\s*SELECT\s+COUNT\(", sql, re.IGNORECASE):
                page.counts += 1
            if is_full_count(sql) and sql not in page.full_counts:
                page.full_counts.append(sql)


def msp_rows(content: str) -> int:
    return content.count('name="product_ids"')


def onboarded_rows(content: str) -> int:
    match = re.search(r'<table id="onboarded">(.*?)</table>', content, re.S)
    return match.group(1).count("<tr data-product-id=") if match else 0


def pending_rows(content: str) -> int:
    match = re.search(r'<table id="pending">(.*?)</table>', content, re.S)
    return match.group(1).count("<tr data-product-id=") if match else 0


def run_pages(args, seeded: Seeded) -> list[PageResult]:
    msp = signed_in(MSP_PORTAL, "/portal/login/", seeded.msp_username, seeded.password)
    director = signed_in(TENANT_HOST, "/accounts/login/", seeded.tenant_admin, seeded.password)
    products = "/portal/products/"
    uuid_start = seeded.controller_product_id.split(":")[1][:4]
    msp_pages = [
        (PageResult("MSP", "products page 1", products), msp_rows),
        (PageResult("MSP", f"products page {args.hops + 1} (next links)",
                    follow_next(msp, products, None, args.hops)), msp_rows),
        (PageResult("MSP", "products mapped=no", f"{products}?{urlencode({'mapped': 'no'})}"), msp_rows),
        (PageResult("MSP", "products search full ID", f"{products}?{urlencode({'q': seeded.product_id})}",
                    expected_text=seeded.product_id), msp_rows),
        (PageResult("MSP", "products search prefix",
                    f"{products}?{urlencode({'q': 'EC100:' + seeded.product_id.split(':')[1][:4]})}"), msp_rows),
    ]
    director_pages = [
        (PageResult("Director", "pending page 1", "/"), pending_rows),
        (PageResult("Director", f"pending page {args.hops + 1} (next links)",
                    follow_next(director, "/", "pending-next", args.hops)), pending_rows),
        (PageResult("Director", "onboarded page 1", "/"), onboarded_rows),
        (PageResult("Director", f"onboarded page {args.hops + 1} (next links)",
                    follow_next(director, "/", "onboarded-next", args.hops)), onboarded_rows),
        (PageResult("Director", "onboarded status=online", "/?status=online"), onboarded_rows),
        (PageResult("Director", "onboarded status=never", "/?status=never"), onboarded_rows),
        (PageResult("Director", "onboarded tag=lab", "/?tag=lab"), onboarded_rows),
        (PageResult("Director", "onboarded search full ID", f"/?{urlencode({'q': seeded.controller_product_id})}",
                    expected_text=seeded.controller_product_id), onboarded_rows),
        (PageResult("Director", "onboarded search prefix", f"/?{urlencode({'q': 'EC100:' + uuid_start})}"),
         onboarded_rows),
    ]
    for page, count_rows in msp_pages:
        measure(msp, page, args.repeat, count_rows)
    for page, count_rows in director_pages:
        measure(director, page, args.repeat, count_rows)
    return [page for page, _ in msp_pages + director_pages]


def print_results(args, pages: list[PageResult]) -> None:
    print()
    print(f"results ({args.rows:,} products and {args.rows:,} ECs, {args.repeat} warm requests per page)")
    for page in pages:
        counts = sorted(set(page.query_counts))
        count_text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        print(f"  {page.portal:<8} {page.name:<34} {page.url[:120]}")
        print(f"      status {sorted(page.statuses)}, {page.rows_shown} rows shown, {count_text} queries "
              f"({page.counts // args.repeat} COUNT), median {page.median:.3f} s, max {max(page.seconds):.3f} s, "
              f"slowest statement {page.slowest[0] * 1000:.0f} ms: {page.slowest[1][:160]}")
        if page.expected_text is not None:
            print(f"      searched Product ID on the page: {'yes' if page.found_expected else 'NO'}")
        for sql in page.full_counts:
            print(f"      full-table COUNT(*): {sql[:200]}")

    print()
    print("targets")
    for page in pages:
        ok = page.statuses == {200} and page.found_expected and page.median < MAX_PAGE_SECONDS
        print(f"  {page.portal:<8} {page.name:<34} median {page.median:.3f} s (target < {MAX_PAGE_SECONDS} s), "
              f"full-table COUNT(*): {'yes' if page.full_counts else 'no'} (target: no)   "
              f"{benchlib.verdict(ok and not page.full_counts)}")


def main() -> None:
    args = parse_args()
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/portal_lists.py: portal lists with {args.rows:,} products and ECs")
    with benchlib.BenchDatabase():
        seeded = seed(args.rows)
        pages = run_pages(args, seeded)
    print_results(args, pages)


if __name__ == "__main__":
    main()
