"""Benchmark hosted tenant creation by cloning the template schema against running every migration.

Run from the project root:

    python bench/tenants_scale.py [--count N] [--migrate-count M]

In a database of its own it creates N hosted Director tenants (default
1,000) through ``tenants.services.create_hosted_tenant`` with
``method="clone"``, then M more (default 20) with ``method="migrate"``, the
baseline. Each creation is the whole service call: the tenant row, the
schema, the domain, the access key, the issuing CA (an EC P-384 key) and the
audit record. The migrating path runs on a sample only, because at about two
seconds a tenant 1,000 of them would take more than half an hour; the output
says how many it ran. M is at most N.

Then, with all N + M tenants in place, it times one ``migrate_schemas`` with
nothing to apply (every tenant schema visited in turn, as after a deploy
without new migrations), and deleting the M migrated tenants with the drop
policy through ``tenants.deletion.delete_hosted_tenant``.

Target, a goal this project set itself: cloning takes at most half the time
per tenant of migrating (a speed-up of 2x or more). The no-op ``migrate_schemas`` and the deletions
are reported without a target.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import benchlib

MIN_SPEEDUP = 2.0
# Lines of progress while the clones run.
PROGRESS_EVERY = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="tenants to create by cloning (default 1,000)")
    parser.add_argument("--migrate-count", type=int, default=20,
                        help="tenants to create by running every migration, the baseline (default 20, "
                             "at most --count)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be at least 1, not {args.count}")
    if args.migrate_count < 1:
        parser.error(f"--migrate-count must be at least 1, not {args.migrate_count}")
    args.migrate_count = min(args.migrate_count, args.count)
    return args


def create_tenants(count: int, method: str, prefix: str) -> list[tuple[str, float]]:
    """Create ``count`` tenants by ``method``; return each schema name with its seconds."""
    from audit.services import Actor
    from tenants.services import create_hosted_tenant

    actor = Actor.system("bench")
    run = uuid.uuid4().hex[:6]
    created = []
    for index in range(count):
        schema_name = f"{prefix}_{run}_{index:05d}"
        started = time.perf_counter()
        create_hosted_tenant(name=schema_name, schema_name=schema_name, domain=f"{schema_name.replace('_', '-')}.bench",
                             actor=actor, method=method)
        created.append((schema_name, time.perf_counter() - started))
        if method == "clone" and (index + 1) % PROGRESS_EVERY == 0:
            recent = [seconds for _name, seconds in created[-PROGRESS_EVERY:]]
            print(f"  {index + 1:,} cloned, the last {PROGRESS_EVERY} at {statistics.mean(recent) * 1000:.0f} ms "
                  "each", flush=True)
    return created


def summary(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"  {label:<28} {statistics.mean(seconds) * 1000:8.0f} ms/tenant   (median "
            f"{statistics.median(seconds) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms, "
            f"{len(seconds):,} tenants, {sum(seconds):.1f} s in all)")


def main() -> None:
    args = parse_args()
    benchlib.exit_on_sigterm()
    benchlib.print_header(f"bench/tenants_scale.py: {args.count:,} tenants by cloning, a sample of "
                          f"{args.migrate_count:,} by migrating")
    with benchlib.BenchDatabase():
        from django.core.management import call_command

        from audit.services import Actor
        from tenants.deletion import delete_hosted_tenant
        from tenants.models import Tenant
        from tenants.template import ensure_tenant_template

        started = time.monotonic()
        ensure_tenant_template(rebuild=True)
        template_seconds = time.monotonic() - started
        print(f"built the template schema in {template_seconds:.1f} s", flush=True)

        cloned = create_tenants(args.count, "clone", "clone")
        print(f"cloned {len(cloned):,} tenants", flush=True)
        migrated = create_tenants(args.migrate_count, "migrate", "migrate")
        print(f"migrated {len(migrated):,} tenants (a sample; see --migrate-count)", flush=True)

        tenant_count = Tenant.objects.exclude(schema_name="public").count()
        started = time.monotonic()
        call_command("migrate_schemas", interactive=False, verbosity=0)
        noop_seconds = time.monotonic() - started
        print(f"no-op migrate_schemas over {tenant_count:,} tenants in {noop_seconds:.1f} s", flush=True)

        delete_seconds = []
        for schema_name, _seconds in migrated:
            started = time.perf_counter()
            delete_hosted_tenant(Tenant.objects.get(schema_name=schema_name), actor=Actor.system("bench"),
                                 policy="drop")
            delete_seconds.append(time.perf_counter() - started)

    clone_seconds = [seconds for _name, seconds in cloned]
    migrate_seconds = [seconds for _name, seconds in migrated]
    print()
    print(f"results ({len(cloned):,} tenants cloned, {len(migrated):,} migrated as a sample of the baseline; "
          "each figure is the whole create_hosted_tenant call)")
    print(summary("clone", clone_seconds))
    print(summary("migrate (baseline, sample)", migrate_seconds))
    first = clone_seconds[:PROGRESS_EVERY]
    last = clone_seconds[-PROGRESS_EVERY:]
    print(f"  clone, first {len(first)} vs last {len(last)}: {statistics.mean(first) * 1000:.0f} ms vs "
          f"{statistics.mean(last) * 1000:.0f} ms per tenant")
    print(f"  template build (once)        {template_seconds:8.1f} s")
    print(f"  no-op migrate_schemas        {noop_seconds:8.1f} s over {tenant_count:,} tenants "
          f"({noop_seconds / tenant_count * 1000:.0f} ms/tenant)")
    print(summary("delete (drop policy)", delete_seconds))

    print()
    print("targets")
    speedup = statistics.mean(migrate_seconds) / statistics.mean(clone_seconds)
    print(f"  migrate / clone time per tenant = {speedup:.1f}x (target >= {MIN_SPEEDUP}x)   "
          f"{benchlib.verdict(speedup >= MIN_SPEEDUP)}")


if __name__ == "__main__":
    main()
