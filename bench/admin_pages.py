"""The users admin's pages at 1,000,000 users (100,000 with --quick).

Each page is timed over HTTP from `manage.py runserver` (DEBUG off): one warm-up, then
the median of 5. Then the same page is requested in-process through django.test.Client
under CaptureQueriesContext, and every SELECT it ran is re-run with EXPLAIN ANALYZE.

    python -m bench.admin_pages [--quick] [--runs 5] [--fresh] [--drop]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

from bench import seed

LIST = "/admin/users/telegramuser/"
TARGET_MS = 300


def pages(name: str, users: int) -> list[tuple[str, str]]:
    middle = users // 2 + 1  # every tenth user has no username
    pk, telegram_id = seed.scalar(
        name,
        "SELECT ARRAY[id, telegram_id] FROM users_telegramuser WHERE username = %s",
        [f"user{middle}"],
    )
    return [
        ("users list", LIST),
        ("users list, page 2000", f"{LIST}?p=2000"),
        ("search: telegram id", f"{LIST}?q={telegram_id}"),
        ("search: username prefix", f"{LIST}?q=user123"),
        ("search: Cyrillic name prefix", f"{LIST}?q=%D0%98%D0%B2%D0%B0%D0%BD"),  # Иван
        ("filter: balance > 0", f"{LIST}?balance=positive"),
        ("filter: blocked", f"{LIST}?is_blocked__exact=1"),
        ("user's change page", f"{LIST}{pk}/change/"),
    ]


def time_http(base: str, targets: list[tuple[str, str]], runs: int) -> dict[str, dict]:
    client = seed.admin_login(base)
    out = {}
    for label, path in targets:
        times = []
        for attempt in range(runs + 1):
            started = time.perf_counter()
            response = client.get(path)
            took = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"GET {path}: HTTP {response.status_code}")
            if attempt:  # the first is the warm-up
                times.append(took)
        out[label] = {
            "path": path,
            "median_ms": seed.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
            "bytes": len(response.content),
        }
        seed.log(f"{label}: {out[label]['median_ms']:.0f} ms")
    client.close()
    return out


def short_sql(sql: str, width: int = 150) -> str:
    if not sql.startswith("SELECT COUNT("):
        sql = re.sub(r"^SELECT .*? FROM", "SELECT … FROM", sql, count=1, flags=re.S)
    sql = re.sub(r"\s+", " ", sql)
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def _plan_nodes(node: dict, found: list[str]) -> list[str]:
    kind = node["Node Type"]
    if "Relation Name" in node:
        kind += f" {node['Relation Name']}"
    if "Index Name" in node:
        kind += f" [{node['Index Name']}]"
    if "Scan" in node["Node Type"] or node["Node Type"] in {"Sort", "Limit"}:
        found.append(f"{kind} rows={node.get('Actual Rows')}")
    for child in node.get("Plans", []):
        _plan_nodes(child, found)
    return found


def explain_queries(name: str, targets: list[tuple[str, str]]) -> dict[str, list[dict]]:
    """Every query behind each page, in-process, with EXPLAIN ANALYZE of the SELECTs."""
    os.environ.update(seed.django_env(name, SECURE_COOKIES="false"))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()  # lets the test client's host through ALLOWED_HOSTS
    client = Client()
    client.force_login(get_user_model().objects.get(username=seed.ADMIN_USER))
    out = {}
    for label, path in targets:
        client.get(path)  # warm-up
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path)
            total_ms = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code)
        queries = []
        for query in captured.captured_queries:
            sql = query["sql"]
            entry = {"sql": sql, "django_ms": float(query["time"]) * 1000}
            if sql.startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
                    plan = cursor.fetchone()[0]
                plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
                entry["explain_ms"] = plan["Execution Time"]
                entry["plan"] = _plan_nodes(plan["Plan"], [])
            queries.append(entry)
        out[label] = {"in_process_ms": total_ms, "queries": queries}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 users, not 1,000,000")
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page")
    seed.add_database_arguments(parser)
    args = parser.parse_args()

    name, users, seeded = seed.prepare_users_db(quick=args.quick, fresh=args.fresh)
    targets = pages(name, users)
    machine = seed.machine()

    with seed.admin_server(name) as (base, _pid):
        http = time_http(base, targets, args.runs)
    sql = explain_queries(name, targets)

    rows = []
    for label, _path in targets:
        timing, queries = http[label], sql[label]["queries"]
        slowest = max((q.get("explain_ms", 0) for q in queries), default=0)
        rows.append(
            [
                label,
                f"{timing['median_ms']:.0f}",
                f"{timing['min_ms']:.0f}–{timing['max_ms']:.0f}",
                f"{sql[label]['in_process_ms']:.0f}",
                len(queries),
                f"{sum(q['django_ms'] for q in queries):.0f}",
                f"{slowest:.1f}",
                "ok" if timing["median_ms"] <= TARGET_MS else f"MISSED (≤ {TARGET_MS})",
            ]
        )
    print(f"\nUsers admin at {users:,} users, over HTTP (runserver, DEBUG off), {machine}")
    headers = ["page", "median ms", "range", "in-proc ms", "queries", "SQL ms", "max EXPLAIN ms"]
    headers.append("target")
    print(seed.table(headers, rows))
    for label, path in targets:
        print(f"\n{label}: GET {path}")
        for query in sql[label]["queries"]:
            explain = f"{query['explain_ms']:.1f}" if "explain_ms" in query else "-"
            sql_text = short_sql(query["sql"])
            print(f"  {query['django_ms']:6.1f} ms (EXPLAIN {explain} ms)  {sql_text}")
            for node in query.get("plan", []):
                print(f"        {node}")

    seed.write_results(
        "admin_pages",
        {
            "bench": "admin_pages",
            "users": users,
            "database": name,
            "seed_seconds": seeded,
            "machine": machine,
            "runs_per_page": args.runs,
            "http": http,
            "sql": sql,
        },
    )
    if args.drop:
        seed.drop_database(name)


if __name__ == "__main__":
    main()
