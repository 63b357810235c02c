"""The admin's pages at 1,000,000 users and 1,000,000 bills (100,000 of each with --quick):
the users list and its searches, and the index with its dashboard.

Each page is timed over HTTP from `manage.py runserver` (DEBUG off): one warm-up, then
the median of 5. Then the same page is requested in-process through django.test.Client
under CaptureQueriesContext, and every SELECT it ran is re-run with EXPLAIN ANALYZE.

The bills (as many as the users) are spread evenly over the last 60 days, over the three
providers, six in ten paid (each with its ledger row, at its `credited_at`), the rest
expired, rejected or failed, and the last hour's unpaid ones still waiting: the
dashboard reads 30 of the 60 days. Before the pages are timed, the past days are closed
by `manage.py dashboard_close_days`, as the running bot would have closed them
(backend/payments/dashboard_days.py): the dashboard reads those days' rows, and today
(and a day whose bills may still move) live.

    python -m bench.admin_pages [--quick] [--runs 5] [--fresh] [--drop]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

from bench import seed

# The dashboard's figures computed on every view: its row times the queries, not the
# cache (DASHBOARD_CACHE_SECONDS) that keeps them for a minute in the product.
os.environ["DASHBOARD_CACHE_SECONDS"] = "0"

LIST = "/admin/users/telegramuser/"
TARGET_MS = 300

BILLS_INSERT = """INSERT INTO payments_bill
    (id, user_id, provider, amount, currency, status, provider_status, pay_url, error,
     created_at, expires_at, status_changed_at, credited_at, invoice_currency,
     invoice_total, charge_id, provider_charge_id, message_id)
"""
# Evenly over 60 days up to now; users taken in a stride over the whole table.
BILLS_SQL = """{insert}SELECT
    'bench' || lpad(i::text, 12, '0'),
    first_user + (i::bigint * 7919) % {users},
    (ARRAY['qiwi', 'telegram', 'yookassa'])[1 + i % 3],
    (1 + i % 50) * 10000,  -- kopecks: 100 to 5,000 rubles
    'RUB',
    status,
    '', '', '',
    t, t + interval '1 hour', t + interval '2 minutes',
    CASE WHEN status = 'PAID' THEN t + interval '2 minutes' END,
    '', NULL,
    CASE WHEN status = 'PAID' THEN 'bench-charge-' || i ELSE '' END,
    '', NULL
FROM (
    SELECT i,
           now() - interval '60 days' + i * (interval '60 days' / {n}) AS t,
           CASE WHEN i % 10 < 6 THEN 'PAID'
                WHEN i % 10 < 8 THEN 'EXPIRED'
                WHEN i % 10 = 8 THEN 'REJECTED'
                WHEN i % 20 = 9 THEN 'FAILED'
                WHEN i > {n} - {n} / 1440 THEN 'WAITING'  -- the last hour's: still open
                ELSE 'EXPIRED' END AS status,
           (SELECT min(id) FROM users_telegramuser) AS first_user
    FROM generate_series(1, {n}) AS i
) AS s
"""
LEDGER_SQL = """INSERT INTO payments_ledgerentry
    (user_id, amount, balance_after, kind, bill_id, reason, created_at)
SELECT user_id, amount, amount, 'topup', id, '', credited_at
FROM payments_bill WHERE status = 'PAID' ORDER BY credited_at
"""


def ensure_bills(name: str, n: int, users: int) -> float:
    """`n` bills and the paid ones' ledger rows in `name` (PostgreSQL); the seeding time."""
    have = seed.scalar(name, "SELECT count(*) FROM payments_bill")
    if have == n:
        seed.log(f"{name}: {n:,} bills already there, reused")
        return 0.0
    if have:
        raise SystemExit(f"{name} has {have:,} bills, not {n:,}: run with --fresh")
    seed.log(f"{name}: seeding {n:,} bills and their ledger rows by SQL...")
    started = time.perf_counter()
    seed.execute(
        name,
        "postgres",
        BILLS_SQL.format(insert=BILLS_INSERT, n=int(n), users=int(users)),
        LEDGER_SQL,
        "VACUUM ANALYZE payments_bill",
        "VACUUM ANALYZE payments_ledgerentry",
    )
    took = time.perf_counter() - started
    seed.log(f"{name}: bills seeded in {took:.1f} s")
    return took


def close_days(name: str) -> dict:
    """The past days closed through the service, as the bot's job does; what it took."""
    started = time.perf_counter()
    done = seed.manage(name, "dashboard_close_days")
    took = time.perf_counter() - started
    for line in done.stdout.splitlines():
        seed.log(f"{name}: {line}")
    seed.log(f"{name}: dashboard_close_days took {took:.1f} s (Django's start included)")
    return {"seconds": took, "output": done.stdout}


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
        ("index with the dashboard, not cached", "/admin/"),
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
    seeded += ensure_bills(name, users, users)
    closed = close_days(name)
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
    print(f"\nAdmin at {users:,} users and bills, over HTTP (runserver, DEBUG off), {machine}")
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
            "bills": users,
            "database": name,
            "seed_seconds": seeded,
            "close_days": closed,
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
