"""Exports of the users list at 1,000,000 users (100,000 with --quick).

Times, each beside the database's own dump of the same columns measured in the same run
(a plain `,` CSV without the formatting: the CSVs' dialect is EXPORT_CSV_DIALECT's, by
default excel-ru, whose quotes, decimal comma and dd.mm.yyyy dates the server makes too):
  (a) the admin's CSV export, streamed over HTTP from `manage.py runserver` (DEBUG off);
  (b) the admin's XLSX export, the same way;
  (c) `manage.py export_users --output /dev/null`;
and the peak RSS growth of the server (VmRSS every 50 ms, minus the value before).
The reference is psql's \\copy on PostgreSQL (`--db postgres`, the default); on
MariaDB (`--db mysql`) the faster of `mysql --batch --quick` into a file and
`SELECT … INTO OUTFILE` (which the server writes itself, where secure_file_priv allows).
With --breakdown, times the pieces of the CSV export in-process (where the time goes).

    python -m bench.export [--db postgres|mysql] [--quick] [--skip-xlsx] [--breakdown]
                           [--fresh] [--drop]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from bench import seed

COPY_SQL = (
    "\\copy (SELECT telegram_id, username, first_name, last_name, "
    "(balance / 100.0)::numeric(20, 2), is_blocked, "
    "created_at, last_seen_at FROM users_telegramuser ORDER BY id) TO '/dev/null' CSV HEADER"
)
CSV_PATH = "/admin/users/telegramuser/export/csv/"
XLSX_PATH = "/admin/users/telegramuser/export/xlsx/"
# Ratios to the reference, by database (issue 14: ≤ 3× the faster dump on MariaDB).
TARGETS = {
    "postgres": {"admin CSV": 3.0, "export_users": 2.0},
    "mysql": {"admin CSV": 3.0, "export_users": 3.0},
}
RSS_TARGET_MB = 100


def psql_copy(name: str) -> float:
    return seed.psql(name, COPY_SQL)


# The same columns on MariaDB: kopecks as a two-place decimal, the dates as stored (UTC).
MYSQL_SELECT = (
    "SELECT telegram_id, username, first_name, last_name, "
    "CAST(balance / 100 AS DECIMAL(20, 2)), is_blocked, created_at, last_seen_at "
    "FROM users_telegramuser ORDER BY id"
)
MYSQL_OUTFILE = (
    " INTO OUTFILE '{path}' CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' "
    "OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\"' LINES TERMINATED BY '\\n'"
)


def mysql_command(name: str, sql: str, stdout) -> float:
    """Run one statement with the mysql client; returns its wall time."""
    started = time.perf_counter()
    subprocess.run(
        ["mysql", "--batch", "--quick", *seed.mysql_args(name), "-e", sql],
        check=True,
        stdout=stdout,
        env=seed.mysql_env(),
    )
    return time.perf_counter() - started


def mysql_batch(name: str) -> float:
    """`mysql --batch --quick` (rows streamed, not held by the client) into a file."""
    with tempfile.NamedTemporaryFile(prefix="topup-bench-", suffix=".tsv") as out:
        return mysql_command(name, MYSQL_SELECT, out)


def outfile_dir(name: str) -> str | None:
    """A folder the server may write INTO OUTFILE to, or None: secure_file_priv's folder,
    or the temporary folder where it is not set (on MariaDB NULL means no limit; on
    MySQL it means never). The file is found only when the server runs on this machine."""
    allowed = seed.scalar(name, "SELECT @@secure_file_priv", engine="mysql")
    if allowed:
        return allowed if os.access(allowed, os.W_OK) else None
    if allowed is None and "mariadb" not in seed.server_version("mysql").lower():
        return None
    return tempfile.gettempdir()


def mysql_outfile(name: str) -> float:
    """`SELECT … INTO OUTFILE`, the server writing the file itself; removed after."""
    folder = outfile_dir(name)
    assert folder is not None
    path = os.path.join(folder, f"topup-bench-{os.getpid()}-{time.monotonic_ns()}.csv")
    try:
        return mysql_command(name, MYSQL_SELECT + MYSQL_OUTFILE.format(path=path), None)
    finally:
        if os.path.exists(path):
            os.remove(path)


def reference_tools(name: str, engine: str) -> dict:
    """The database's own dumps of the same columns, by label."""
    if engine == "postgres":
        return {"psql \\copy": lambda: psql_copy(name)}
    tools = {"mysql --batch --quick": lambda: mysql_batch(name)}
    if outfile_dir(name) is not None:
        tools["SELECT … INTO OUTFILE"] = lambda: mysql_outfile(name)
    else:
        seed.log("INTO OUTFILE left out: secure_file_priv allows no folder here")
    return tools


def reference(tools: dict, runs: int = 3) -> dict:
    """Each tool's median wall time (after one warm-up run) and the fastest of them."""
    medians = {}
    for label, tool in tools.items():
        tool()
        medians[label] = seed.median([tool() for _ in range(runs)])
    fastest = min(medians, key=medians.get)
    return {"reference": fastest, "reference_s": medians[fastest], "references_s": medians}


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


def run_command(name: str, args: list[str], engine: str = "postgres") -> dict:
    """A manage.py command as a subprocess: wall time and its peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=seed.ROOT,
        env=seed.django_env(name, engine),
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


def breakdown(name: str, rows: int, engine: str = "postgres") -> list[list]:
    """The CSV export's pieces in-process over the first `rows` users, each a full pass."""
    os.environ.update(seed.django_env(name, engine, DEBUG="false"))
    import django

    django.setup()
    from django.db import connection

    from backend.users import exports
    from backend.users.exports import columns
    from backend.users.models import TelegramUser

    # The first `rows` users (the ids need not start at 1: a failed seed leaves a gap).
    last_pk = TelegramUser.objects.order_by("pk").values_list("pk", flat=True)[rows - 1]
    queryset = TelegramUser.objects.filter(pk__lte=last_pk)
    sql = (
        "SELECT telegram_id, username, first_name, last_name, balance, is_blocked, "
        "created_at, last_seen_at FROM users_telegramuser WHERE id <= %s ORDER BY id"
    )

    def raw_fetch() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, [last_pk])
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

    driver = "mysqlclient" if engine == "mysql" else "psycopg2"
    made_by = {"postgres": "COPY on PostgreSQL", "mysql": "the lines MariaDB makes"}[engine]
    if not exports.csv_made_by_copy(queryset=queryset):
        made_by = "Python"
    steps = [
        (f"raw cursor fetch ({driver}, all rows, no Django)", raw_fetch),
        ("ORM values_list().iterator(chunk_size=2000)", values_list),
        ("  + the two dates formatted as the CSV's dialect does", plus_localtime),
        ("exports.csv_chunks, encoded (the Python path, SQLite's)", python_csv),
        (f"exports.csv_stream ({made_by}, what the admin sends)", copy_csv),
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
    parser.add_argument("--db", choices=seed.ENGINES, default="postgres", help="the database")
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
    engine = args.db

    name, users, seeded = seed.prepare_users_db(quick=args.quick, fresh=args.fresh, engine=engine)
    results: dict = {
        "bench": "export",
        "engine": engine,
        "users": users,
        "database": name,
        "seed_seconds": seeded,
        "table_size": seed.table_size(name, "users_telegramuser", engine),
        "machine": seed.machine(engine),
        "runs": {},
    }
    runs = results["runs"]
    tools = reference_tools(name, engine)

    startup = run_command(name, ["help", "export_users"], engine)["seconds"]
    results["django_startup_s"] = startup

    with seed.admin_server(name, engine) as (base, pid):
        client = seed.admin_login(base)
        # One small request so the server has loaded everything before the baseline.
        client.get("/admin/users/telegramuser/")
        before = reference(tools)
        for label, seconds in before["references_s"].items():
            runs[label] = {"seconds": seconds}
        if "csv" in args.only:
            seed.log("admin CSV export...")
            runs["admin CSV"] = download(client, CSV_PATH, pid) | reference(tools)
        if "xlsx" in args.only and not args.skip_xlsx:
            seed.log("admin XLSX export...")
            runs["admin XLSX"] = download(client, XLSX_PATH, pid) | reference(tools)
        client.close()

    if "command" in args.only:
        seed.log("export_users...")
        runs["export_users"] = run_command(
            name, ["export_users", "--output", "/dev/null"], engine
        ) | reference(tools)
        runs["export_users"]["minus_startup_s"] = runs["export_users"]["seconds"] - startup

    rows = []
    for label, run in runs.items():
        copy = run.get("reference_s", run["seconds"])
        ratio = run["seconds"] / copy
        run["ratio"] = ratio
        target = TARGETS[engine].get(label)
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
                run.get("reference", ""),
                f"{ratio:.1f}×",
                f"{run['first_byte_s']:.2f}" if run.get("first_byte_s") is not None else "",
                f"{run['bytes'] / 1e6:.1f}" if run.get("bytes") else "",
                rss_cell(run),
                verdict.strip(),
            ]
        )
    headers = ["export", "wall s", "ref. s", "reference", "ratio", "1st byte s", "MB", "RSS MB"]
    headers.append("target")
    print(
        f"\nExports of {users:,} users on {seed.ENGINE_NAMES[engine]} "
        f"({results['table_size']} table), {seed.machine(engine)}"
    )
    print(seed.table(headers, rows))
    print(f"Reference: the fastest of {', '.join(tools)} (median of 3), after each export")
    print(f"Django start-up of a manage.py command: {startup:.2f} s (inside export_users' time)")

    if args.breakdown:
        limit = users if args.quick else 200_000
        seed.log(f"breakdown over {limit:,} rows...")
        pieces = breakdown(name, limit, engine)
        results["breakdown"] = {"rows": limit, "steps": dict(pieces)}
        print(f"\nWhere the CSV export's time goes, in-process, {limit:,} rows:")
        print(seed.table(["step", "s"], pieces))

    seed.write_results("export", results)
    if args.drop:
        seed.drop_database(name, engine)


if __name__ == "__main__":
    main()
