"""Exports of the users list at 1,000,000 users (100,000 with --quick).

Times, each beside psql's \\copy of the same columns in the same run (a plain `,` CSV
without the formatting: the CSVs' dialect is EXPORT_CSV_DIALECT's, by default excel-ru,
whose quotes, decimal comma and dd.mm.yyyy dates the server makes too):
  (a) the admin's CSV export, streamed over HTTP from `manage.py runserver` (DEBUG off);
  (b) the admin's XLSX export, the same way;
  (c) `manage.py export_users --output /dev/null`;
and the peak RSS growth of the server (VmRSS every 50 ms, minus the value before).
With --breakdown, times the pieces of the CSV export in-process (where the time goes).

    python -m bench.export [--quick] [--skip-xlsx] [--breakdown] [--fresh] [--drop]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench import seed

COPY_SQL = (
    "\\copy (SELECT telegram_id, username, first_name, last_name, "
    "(balance / 100.0)::numeric(20, 2), is_blocked, "
    "created_at, last_seen_at FROM users_telegramuser ORDER BY id) TO '/dev/null' CSV HEADER"
)
CSV_PATH = "/admin/users/telegramuser/export/csv/"
XLSX_PATH = "/admin/users/telegramuser/export/xlsx/"
TARGETS = {"admin CSV": 3.0, "export_users": 2.0}
RSS_TARGET_MB = 100


def psql_copy(name: str, runs: int = 3) -> float:
    """Median wall time of psql \\copy (after one warm-up run)."""
    seed.psql(name, COPY_SQL)
    return seed.median([seed.psql(name, COPY_SQL) for _ in range(runs)])


def download(client, path: str, pid: int) -> dict:
    """Stream `path`, discarding the body; time, first byte, size, server RSS growth."""
    with seed.RssSampler(pid) as rss:
        started = time.perf_counter()
        first = None
        size = 0
        with client.stream("GET", path) as response:
            if response.status_code != 200:
                raise SystemExit(f"GET {path}: HTTP {response.status_code}")
            for chunk in response.iter_raw(64 * 1024):
                if first is None:
                    first = time.perf_counter() - started
                size += len(chunk)
        took = time.perf_counter() - started
    return {
        "seconds": took,
        "first_byte_s": first,
        "bytes": size,
        "rss_before_mb": rss.start_kb / 1024,
        "rss_growth_mb": rss.growth_mb,
    }


def run_command(name: str, args: list[str]) -> dict:
    """A manage.py command as a subprocess: wall time and its peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=seed.ROOT,
        env=seed.django_env(name),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, seed.rss_kb(process.pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    stderr = process.communicate()[1]
    took = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{stderr}")
    return {"seconds": took, "peak_rss_mb": peak / 1024}


def breakdown(name: str, rows: int) -> list[list]:
    """The CSV export's pieces in-process over the first `rows` users, each a full pass."""
    os.environ.update(seed.django_env(name, DEBUG="false"))
    import django

    django.setup()
    from django.db import connection

    from backend.users import exports
    from backend.users.exports import columns
    from backend.users.models import TelegramUser

    queryset = TelegramUser.objects.filter(pk__lte=rows)
    sql = (
        "SELECT telegram_id, username, first_name, last_name, balance, is_blocked, "
        "created_at, last_seen_at FROM users_telegramuser WHERE id <= %s ORDER BY id"
    )

    def raw_fetch() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, [rows])
            while cursor.fetchmany(2000):
                pass

    def values_list() -> None:
        for _ in columns.user_rows(queryset):
            pass

    def plus_localtime() -> None:
        form = exports.csv_format(model=TelegramUser)
        for row in columns.user_rows(queryset):
            form.date(row[6])
            form.date(row[7])

    def python_csv() -> None:
        for text in exports.csv_chunks(queryset=queryset, bom=True):
            text.encode()

    def copy_csv() -> None:
        for _ in exports.csv_stream(queryset=queryset, bom=True):
            pass

    def python_xlsx() -> None:
        for _ in exports.xlsx_stream(queryset=queryset):
            pass

    steps = [
        ("raw cursor fetch (psycopg2, all rows, no Django)", raw_fetch),
        ("ORM values_list().iterator(chunk_size=2000)", values_list),
        ("  + the two dates formatted as the CSV's dialect does", plus_localtime),
        ("exports.csv_chunks, encoded (the Python path, SQLite's)", python_csv),
        ("exports.csv_stream (COPY on PostgreSQL, what the admin sends)", copy_csv),
        ("exports.xlsx_stream (the XLSX the admin sends)", python_xlsx),
    ]
    out = []
    for label, step in steps:
        started = time.perf_counter()
        step()
        out.append([label, f"{time.perf_counter() - started:.2f}"])
    connection.close()
    return out


def rss_cell(run: dict) -> str:
    if run.get("rss_growth_mb") is not None:
        return f"{run['rss_growth_mb']:+.1f}"
    if run.get("peak_rss_mb") is not None:
        return f"peak {run['peak_rss_mb']:.0f}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 users, not 1,000,000")
    parser.add_argument("--skip-xlsx", action="store_true", help="leave out the XLSX export")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["csv", "xlsx", "command"],
        default=["csv", "xlsx", "command"],
        help="which exports to time (all by default)",
    )
    parser.add_argument("--breakdown", action="store_true", help="time the CSV's pieces too")
    seed.add_database_arguments(parser)
    args = parser.parse_args()

    name, users, seeded = seed.prepare_users_db(quick=args.quick, fresh=args.fresh)
    results: dict = {
        "bench": "export",
        "users": users,
        "database": name,
        "seed_seconds": seeded,
        "table_size": seed.table_size(name, "users_telegramuser"),
        "machine": seed.machine(),
        "runs": {},
    }
    runs = results["runs"]

    startup = run_command(name, ["help", "export_users"])["seconds"]
    results["django_startup_s"] = startup

    with seed.admin_server(name) as (base, pid):
        client = seed.admin_login(base)
        # One small request so the server has loaded everything before the baseline.
        client.get("/admin/users/telegramuser/")
        runs["psql \\copy (CSV)"] = {"seconds": psql_copy(name)}
        if "csv" in args.only:
            seed.log("admin CSV export...")
            runs["admin CSV"] = download(client, CSV_PATH, pid)
            runs["admin CSV"]["psql_copy_s"] = psql_copy(name)
        if "xlsx" in args.only and not args.skip_xlsx:
            seed.log("admin XLSX export...")
            runs["admin XLSX"] = download(client, XLSX_PATH, pid)
            runs["admin XLSX"]["psql_copy_s"] = psql_copy(name)
        client.close()

    if "command" in args.only:
        seed.log("export_users...")
        runs["export_users"] = run_command(name, ["export_users", "--output", "/dev/null"])
        runs["export_users"]["psql_copy_s"] = psql_copy(name)
        runs["export_users"]["minus_startup_s"] = runs["export_users"]["seconds"] - startup

    rows = []
    for label, run in runs.items():
        copy = run.get("psql_copy_s", run["seconds"])
        ratio = run["seconds"] / copy
        run["ratio_to_psql_copy"] = ratio
        target = TARGETS.get(label)
        growth = run.get("rss_growth_mb")
        verdict = ""
        if target:
            verdict = "ok" if ratio <= target else f"MISSED (≤ {target:g}×)"
        if growth is not None and growth > RSS_TARGET_MB:
            verdict += f" RSS MISSED (≤ {RSS_TARGET_MB} MB)"
        rows.append(
            [
                label,
                f"{run['seconds']:.2f}",
                f"{copy:.2f}",
                f"{ratio:.1f}×",
                f"{run['first_byte_s']:.2f}" if run.get("first_byte_s") is not None else "",
                f"{run['bytes'] / 1e6:.1f}" if run.get("bytes") else "",
                rss_cell(run),
                verdict.strip(),
            ]
        )
    headers = ["export", "wall s", "psql s", "ratio", "1st byte s", "MB", "RSS MB", "target"]
    print(f"\nExports of {users:,} users ({results['table_size']} table), {seed.machine()}")
    print(seed.table(headers, rows))
    print(f"Django start-up of a manage.py command: {startup:.2f} s (inside export_users' time)")

    if args.breakdown:
        limit = users if args.quick else 200_000
        seed.log(f"breakdown over {limit:,} rows...")
        pieces = breakdown(name, limit)
        results["breakdown"] = {"rows": limit, "steps": dict(pieces)}
        print(f"\nWhere the CSV export's time goes, in-process, {limit:,} rows:")
        print(seed.table(["step", "s"], pieces))

    seed.write_results("export", results)
    if args.drop:
        seed.drop_database(name)


if __name__ == "__main__":
    main()
