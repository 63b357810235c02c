"""Updates benchmark: floods the bot with /start updates through a fake Bot API.

    python -m bench.updates [--updates K] [--rate R] [--duration S] [--reps N]
                            [--db sqlite|postgres|mysql|both|all] [--log-level L] [--quick]

An in-process fake Bot API (aiohttp on 127.0.0.1, an ephemeral port, one per bot) serves
getMe/getUpdates/sendMessage/..., and the bots run as subprocesses pointed at it with
TELEGRAM_API_SERVER: the product (`python runbot.py`, on a fresh SQLite file, a fresh
PostgreSQL database and/or a fresh MariaDB database: `--db all`, the default, runs the
three, `both` SQLite and PostgreSQL) and bench/bare_bot.py (bare aiogram, no Django, no
database) as the reference. All bots stay up for the whole run and the measurements interleave, so
a slow spell of the machine hits them alike.

Per measurement: wall time from the first update enqueued to the last reply, replies/s,
p50/p99 latency (enqueue → sendMessage received), CPU seconds of the bot process per
update (/proc/<pid>/stat utime+stime), and the bot's peak RSS (VmHWM). Burst mode queues
K updates at once (getUpdates hands out up to 100 a call, honouring offset); steady mode
enqueues R updates a second for S seconds. Each measurement is repeated --reps times and
the medians are reported, with the ratio product/bare. JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import platform
import resource
import secrets
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from bench import seed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# The product's databases of each --db choice.
DB_CHOICES = {
    "sqlite": ("sqlite",),
    "postgres": ("postgres",),
    "mysql": ("mysql",),
    "both": ("sqlite", "postgres"),
    "all": ("sqlite", "postgres", "mysql"),
}
WARMUP_UPDATES = 20
START_TIMEOUT = 90.0
GREETING_START = "Привет, "
LOAD_AT_START = os.getloadavg()  # this module is imported as a run starts


# ---- the fake Bot API ------------------------------------------------------------


class FakeBotApi:
    """Just enough of the Bot API for long polling, webhooks and replies, kept cheap: the
    updates are encoded once when enqueued and getUpdates only joins bytes. setWebhook,
    deleteWebhook and getWebhookInfo keep the webhook's url and secret (bench/webhook.py
    waits for setWebhook as the sign that a webhook bot listens)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._pending: deque[tuple[int, bytes]] = deque()
        self._has_updates = asyncio.Event()
        self._next_update_id = 1
        self._next_message_id = 1
        self.first_poll_at: float | None = None
        self.polled = asyncio.Event()
        self.other_methods: Counter[str] = Counter()
        self.bad_replies = 0
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook_sets = 0  # setWebhook calls: one per webhook worker
        self.webhook_set = asyncio.Event()
        self.reset()

    def reset(self, expected: int = 0) -> None:
        """Start a measurement: only replies to users enqueued from now on count."""
        self.enqueued_at: dict[int, float] = {}
        self.replied_at: dict[int, float] = {}
        self.expected = expected
        self.done = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._has_updates.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def enqueue(self, user_ids: range | list[int]) -> None:
        """Updates for getUpdates; their latency counts from now."""
        now = time.perf_counter()
        date = int(time.time())
        for user_id in user_ids:
            update_id = self._next_update_id
            self._next_update_id += 1
            self.enqueued_at[user_id] = now
            self._pending.append((update_id, start_update(update_id, user_id, date)))
        self._has_updates.set()

    def expect(self, user_id: int, since: float) -> None:
        """A reply to `user_id` is due, its latency counted from `since` (perf_counter):
        for updates delivered some other way (a webhook POST)."""
        self.enqueued_at[user_id] = since

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(await request.post())
        if method == "sendMessage":
            return self._send_message(params)
        if method == "getUpdates":
            return await self._get_updates(params)
        if method == "getMe":
            me = {"id": self.bot_id, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
            return _json({"ok": True, "result": me})
        if method == "getWebhookInfo":
            info = {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
            return _json({"ok": True, "result": info})
        self.other_methods[method] += 1  # setWebhook, deleteWebhook, setMyCommands, ...
        if method == "setWebhook":
            self.webhook_url = str(params.get("url") or "")
            self.webhook_secret = str(params.get("secret_token") or "")
            self.webhook_sets += 1
            self.webhook_set.set()
        elif method == "deleteWebhook":
            self.webhook_url = self.webhook_secret = ""
        return _json({"ok": True, "result": True})

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        if self.first_poll_at is None:
            self.first_poll_at = time.perf_counter()
            self.polled.set()
        offset = int(params.get("offset") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 100))
        timeout = max(0.0, min(float(params.get("timeout") or 0), 50.0))
        pending = self._pending
        while pending and pending[0][0] < offset:
            pending.popleft()
        if not pending and timeout:
            self._has_updates.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._has_updates.wait(), timeout)
        batch = b",".join(body for _, body in itertools.islice(pending, limit))
        return web.Response(
            body=b'{"ok":true,"result":[' + batch + b"]}", content_type="application/json"
        )

    def _send_message(self, params: dict[str, Any]) -> web.Response:
        now = time.perf_counter()
        chat_id = int(params.get("chat_id") or 0)
        text = str(params.get("text") or "")
        if not text.startswith(GREETING_START):
            self.bad_replies += 1
        if chat_id in self.enqueued_at and chat_id not in self.replied_at:
            self.replied_at[chat_id] = now
            if self.expected and len(self.replied_at) >= self.expected:
                self.done.set()
        message_id = self._next_message_id
        self._next_message_id += 1
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "Bench"},
            "text": text,
        }
        return _json({"ok": True, "result": message})


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
    )


def start_update(update_id: int, user_id: int, date: int) -> bytes:
    """A /start from a new user, as Telegram encodes it (JSON, UTF-8)."""
    user = {
        "id": user_id,
        "is_bot": False,
        "first_name": f"Пользователь {user_id}",
        "username": f"bench{user_id}",
        "language_code": "ru",
    }
    chat = {"id": user_id, "type": "private", "first_name": user["first_name"]}
    message = {
        "message_id": update_id,
        "date": date,
        "chat": chat,
        "from": user,
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }
    return json.dumps({"update_id": update_id, "message": message}, ensure_ascii=False).encode()


# ---- the bots under test ---------------------------------------------------------


def random_token() -> str:
    alphabet = string.ascii_letters + string.digits
    digits = str(secrets.randbelow(9 * 10**9) + 10**9)
    return digits + ":" + "".join(secrets.choice(alphabet) for _ in range(35))


def qiwi_secret_key() -> str:
    """A P2P secret key of the shape pyqiwip2p accepts (as tests/fakes/qiwi.py makes)."""
    data = {
        "payin_merchant_site_uid": "bench-site",
        "user_id": "79000000000",
        "secret": secrets.token_hex(16),
    }
    return base64.b64encode(json.dumps({"version": "P2P", "data": data}).encode()).decode()


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def proc_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a bot with worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def pids_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of these processes; one that has ended counts nothing."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += proc_cpu_seconds(pid)
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (not idle, not waiting for I/O)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Target:
    name: str  # "bare", "sqlite", "postgres", "mysql"
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    token: str = field(default_factory=random_token)
    fake: FakeBotApi | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    startup_s: float | None = None
    idle_rss_kb: int = 0
    peak_rss_kb: int = 0
    db: tuple[str, str] | None = None  # (admin url, database name): the server's CPU
    error: str | None = None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "bare aiogram" if self.name == "bare" else f"product/{self.name}"

    def other_methods_summary(self) -> dict[str, int]:
        return dict(self.fake.other_methods) if self.fake is not None else {}

    def log_tail(self, lines: int = 15) -> str:
        text = ""
        for name in ("stdout.log", "stderr.log"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def start(self) -> None:
        self.fake = FakeBotApi(self.token)
        await self.fake.start()
        env = {**self.env, "TELEGRAM_API_TOKEN": self.token, "TELEGRAM_API_SERVER": self.fake.url}
        self.started_at = time.perf_counter()
        with (
            open(self.workdir / "stdout.log", "wb") as out,
            open(self.workdir / "stderr.log", "wb") as err,
        ):
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=out, stderr=err)

    async def wait_ready(self) -> None:
        """Wait for the first getUpdates, then let a few updates through unmeasured (the
        first ones open the database connection and fill lazy caches)."""
        assert self.fake is not None and self.proc is not None
        deadline = time.perf_counter() + START_TIMEOUT
        while not self.fake.polled.is_set():
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no getUpdates in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        assert self.fake.first_poll_at is not None
        self.startup_s = self.fake.first_poll_at - self.started_at
        self.fake.reset(WARMUP_UPDATES)
        self.fake.enqueue(USERS.take(WARMUP_UPDATES))
        try:
            await asyncio.wait_for(self.fake.done.wait(), 30)
        except TimeoutError:
            raise RuntimeError(f"no replies to the warm-up:\n{self.log_tail()}") from None
        await asyncio.sleep(0.2)
        self.idle_rss_kb = proc_status_kb(self.proc.pid, "VmRSS")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self.peak_rss_kb = max(self.peak_rss_kb, proc_status_kb(self.proc.pid, "VmHWM"))
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Users:
    """Distinct user ids across the whole run: every update is a new user."""

    def __init__(self) -> None:
        self._next = 700_000_000

    def take(self, n: int) -> range:
        ids = range(self._next, self._next + n)
        self._next += n
        return ids


USERS = Users()


# ---- measurements ----------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class CpuReadings:
    """CPU seconds spent during one measurement by the bot's processes, by this process
    (the fake Bot API, and bench/webhook.py's client), by the database server's
    processes or threads serving the bot's database (sampled while it runs; `db` is
    (admin URL, database name)), and by everything else on the machine."""

    def __init__(self, pids: list[int], db: tuple[str, str] | None = None) -> None:
        self.pids = pids
        self._meter = db_cpu_meter(*db) if db else None
        self._sampler: asyncio.Task[None] | None = None
        self._bot0 = pids_cpu_seconds(pids)
        self._self0 = self_cpu_seconds()
        self._busy0 = machine_busy_seconds()
        if self._meter is not None:
            self._meter.sample()
            self._sampler = asyncio.create_task(self._meter.run())

    async def stop(self) -> dict[str, float | None]:
        bot = pids_cpu_seconds(self.pids) - self._bot0
        own = self_cpu_seconds() - self._self0
        busy = machine_busy_seconds() - self._busy0
        db: float | None = None
        if self._meter is not None:
            assert self._sampler is not None
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._meter.sample()
            db = self._meter.total()
            self._meter.close()
        others = busy - bot - own - (db or 0.0)
        return {"bot": bot, "self": own, "db": db, "others": max(0.0, others)}


def reply_figures(
    fake: FakeBotApi, t0: float, n: int, cpu: dict[str, float | None], bad_before: int
) -> dict[str, Any]:
    """The measurement's figures from the replies the fake received since `t0`."""
    replied = len(fake.replied_at)
    last = max(fake.replied_at.values(), default=t0)
    latencies = sorted((fake.replied_at[u] - fake.enqueued_at[u]) * 1000 for u in fake.replied_at)
    wall = last - t0
    bot_cpu, db_cpu = cpu["bot"] or 0.0, cpu["db"]
    return {
        "updates": n,
        "replies": replied,
        "bad_replies": fake.bad_replies - bad_before,
        "wall_s": round(wall, 3),
        "replies_per_s": round(replied / wall, 1) if wall > 0 else None,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "cpu_ms_per_update": round(bot_cpu * 1000 / max(replied, 1), 3),
        "bot_cpu_util": round(bot_cpu / wall, 2) if wall > 0 else None,
        "fake_cpu_util": round((cpu["self"] or 0.0) / wall, 2) if wall > 0 else None,
        "db_cpu_ms_per_update": (
            round(db_cpu * 1000 / max(replied, 1), 3) if db_cpu is not None else None
        ),
        "others_cpu_util": round((cpu["others"] or 0.0) / wall, 2) if wall > 0 else None,
    }


async def measure(target: Target, mode: str, n: int, rate: float) -> dict[str, Any]:
    fake, proc = target.fake, target.proc
    assert fake is not None and proc is not None
    if proc.poll() is not None:
        raise RuntimeError(f"the bot exited with {proc.returncode}:\n{target.log_tail()}")
    fake.reset(n)
    users = USERS.take(n)
    bad_before = fake.bad_replies
    readings = CpuReadings([proc.pid], target.db)
    t0 = time.perf_counter()
    if mode == "burst":
        fake.enqueue(users)
    else:  # steady: R a second, on an absolute schedule (catching up if late)
        sent = 0
        while sent < n:
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            if due > sent:
                fake.enqueue(users[sent:due])
                sent = due
            await asyncio.sleep(max(0.0, t0 + sent / rate - time.perf_counter()))
    timeout = 60 + n / 20
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fake.done.wait(), timeout)
    cpu = await readings.stop()
    rss_kb = proc_status_kb(proc.pid, "VmHWM")
    target.peak_rss_kb = max(target.peak_rss_kb, rss_kb)
    return {**reply_figures(fake, t0, n, cpu, bad_before), "peak_rss_mb": round(rss_kb / 1024, 1)}


METRICS = (
    "replies_per_s",
    "p50_ms",
    "p99_ms",
    "cpu_ms_per_update",
    "db_cpu_ms_per_update",
    "bot_cpu_util",
    "fake_cpu_util",
    "others_cpu_util",
    "wall_s",
)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in METRICS:
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[key] = round(statistics.median(values), 3) if values else None
    summary["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    summary["lost_replies"] = sum(r["updates"] - r["replies"] for r in runs)
    summary["bad_replies"] = sum(r["bad_replies"] for r in runs)
    summary["reps"] = {k: [r[k] for r in runs] for k in ("replies_per_s", "p99_ms")}
    return summary


# ---- databases -------------------------------------------------------------------


def pg_connect(admin_url: str):  # -> psycopg2 connection
    import psycopg2

    conn = psycopg2.connect(admin_url, connect_timeout=5)
    conn.autocommit = True
    return conn


def pg_create(admin_url: str, prefix: str = "bench_updates", template: str | None = None) -> str:
    """A new database (a copy of the database at URL `template`, when given); its URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    copy = f' TEMPLATE "{urlsplit(template).path.lstrip("/")}"' if template else ""
    conn = pg_connect(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        conn.close()
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def pg_drop(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = pg_connect(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def mysql_create(prefix: str = "bench_updates") -> str:
    """A new MariaDB database as the project wants it (utf8mb4_bin); its URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    seed.execute(None, "mysql", seed.MYSQL_CREATE.format(name=name))
    return seed.db_url(name, "mysql")


def mysql_drop(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    seed.execute(None, "mysql", f"DROP DATABASE IF EXISTS `{name}`")


class PgCpuMeter:
    """CPU seconds of the PostgreSQL backends serving one database during a measurement.

    Backends come and go (the bot reconnects after CONN_MAX_AGE), so they are sampled
    while the measurement runs: one that ends counts up to its last sample, one that
    starts counts from zero.
    """

    # A connection that appears after the first sample: its CPU counts from zero (a
    # new backend process), or from the first sample (a thread that served others).
    COUNT_NEW_FROM_ZERO = True

    def __init__(self, admin_url: str, database: str) -> None:
        self._conn = self.connect(admin_url)
        self._database = database
        self._start: dict[Any, float] = {}
        self._last: dict[Any, float] = {}
        self._first = True

    def connect(self, admin_url: str):
        return pg_connect(admin_url)

    def serving(self) -> list[tuple[Any, int]]:
        """What serves the database now: (a key of the connection, its id in /proc)."""
        with self._conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self._database])
            return [(row[0], row[0]) for row in cur.fetchall()]

    def sample(self) -> None:
        for key, pid in self.serving():
            try:
                cpu = proc_cpu_seconds(pid)
            except OSError:
                continue
            from_zero = self.COUNT_NEW_FROM_ZERO and not self._first
            self._start.setdefault(key, 0.0 if from_zero else cpu)
            self._last[key] = cpu
        self._first = False

    async def run(self, every: float = 0.25) -> None:
        while True:
            await asyncio.sleep(every)
            self.sample()

    def total(self) -> float:
        return sum(cpu - self._start[key] for key, cpu in self._last.items())

    def close(self) -> None:
        self._conn.close()


class MysqlCpuMeter(PgCpuMeter):
    """The same for MariaDB: one process, a thread per connection (thread_handling
    one-thread-per-connection, the default); PROCESSLIST's TID names each connection's
    thread, whose CPU /proc/<tid>/stat has. The server keeps ended connections' threads
    for new ones, so a new connection counts from its first sample (what it did before
    that, at most 0.25 s, is lost)."""

    COUNT_NEW_FROM_ZERO = False

    def connect(self, admin_url: str):
        return seed.connect(None, "mysql")

    def serving(self) -> list[tuple[Any, int]]:
        cur = self._conn.cursor()
        sql = "SELECT id, tid FROM information_schema.processlist WHERE db = %s"
        cur.execute(sql, [self._database])
        rows = [((conn_id, tid), tid) for conn_id, tid in cur.fetchall()]
        cur.close()
        return rows


def db_cpu_meter(admin_url: str, database: str) -> PgCpuMeter:
    meter = MysqlCpuMeter if admin_url.startswith("mysql") else PgCpuMeter
    return meter(admin_url, database)


def base_env(tmp: Path, log_level: str = "WARNING") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DEBUG": "false",
            "BACKEND_SECRET_KEY": secrets.token_urlsafe(48),
            "QIWI_SECRET_KEY": qiwi_secret_key(),
            "QIWI_API_URL": "http://127.0.0.1:9",
            "LOG_DIR": str(tmp / "logs"),
            "LOG_LEVEL": log_level,
            "ADMIN_TELEGRAM_IDS": "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


# ---- the run ---------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import aiogram

    return {
        "nproc": os.cpu_count(),
        "cpu": seed.cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "aiogram": aiogram.__version__,
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in LOAD_AT_START],
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-updates-")
    tmp = Path(tmp_dir.name)
    env = base_env(tmp, args.log_level)
    targets: list[Target] = []
    notes: list[str] = []
    pg_url: str | None = None
    mysql_url: str | None = None

    def workdir(name: str) -> Path:
        path = tmp / name
        path.mkdir()
        return path

    targets.append(
        Target("bare", [sys.executable, str(ROOT / "bench" / "bare_bot.py")], env, workdir("bare"))
    )
    dbs: list[tuple[str, str]] = []
    chosen = DB_CHOICES[args.db]
    if "sqlite" in chosen:
        dbs.append(("sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}"))
    creators = {"postgres": lambda: pg_create(args.pg_admin_url), "mysql": mysql_create}
    for name, create in creators.items():
        if name not in chosen:
            continue
        try:
            url = create()
        except Exception as e:
            if args.db == name:
                raise
            notes.append(f"{seed.ENGINE_NAMES[name]} skipped: {type(e).__name__}: {e}".strip())
            print(notes[-1], file=sys.stderr)
            continue
        dbs.append((name, url))
        if name == "postgres":
            pg_url = url
        else:
            mysql_url = url
    try:
        migrations = []
        for name, url in dbs:
            db_env = {**env, "DATABASE_URL": url}
            wd = workdir(name)
            cmd = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
            with open(wd / "migrate.log", "wb") as log:
                proc = subprocess.Popen(cmd, cwd=ROOT, env=db_env, stdout=log, stderr=log)
            migrations.append((name, db_env, wd, proc))
            target = Target(name, [sys.executable, "runbot.py"], db_env, wd)
            if name in ("postgres", "mysql"):
                admin = args.pg_admin_url if name == "postgres" else seed.MYSQL
                target.db = (admin, urlsplit(url).path.lstrip("/"))
            targets.append(target)
        await targets[0].start()  # the bare bot starts while the databases migrate
        for name, _, wd, proc in migrations:
            if await asyncio.to_thread(proc.wait) != 0:
                log = (wd / "migrate.log").read_text(errors="replace")
                raise RuntimeError(f"migrate on {name} failed:\n{log[-2000:]}")
        for target in targets[1:]:
            await target.start()
        for target in targets:
            try:
                await target.wait_ready()
            except RuntimeError as e:
                target.error = str(e)
                print(f"{target.label}: {e}", file=sys.stderr)
                target.stop()
        live = [t for t in targets if t.error is None]
        print(
            "ready: "
            + ", ".join(f"{t.label} started in {t.startup_s:.1f} s" for t in live)
            + f"; {args.reps} rep(s) of burst {args.updates} and steady "
            f"{args.rate:g}/s x {args.duration:g} s",
            file=sys.stderr,
        )
        steady_n = max(1, round(args.rate * args.duration))
        for rep in range(args.reps):
            order = live[rep % len(live) :] + live[: rep % len(live)]  # rotate the order
            for mode, n in (("burst", args.updates), ("steady", steady_n)):
                for target in order:
                    if target.error is not None:
                        continue
                    try:
                        result = await measure(target, mode, n, args.rate)
                    except (RuntimeError, OSError) as e:
                        target.error = str(e)
                        print(f"{target.label}: {e}", file=sys.stderr)
                        continue
                    target.runs.setdefault(mode, []).append(result)
                    print(
                        f"rep {rep + 1} {mode:6} {target.label:17} "
                        f"{result['replies']}/{n} replies, {result['replies_per_s']}/s, "
                        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                        f"CPU {result['cpu_ms_per_update']} ms/update",
                        file=sys.stderr,
                    )
                    await asyncio.sleep(0.5)  # let the bot settle
    finally:
        for target in targets:
            target.stop()
            if target.fake is not None:
                await target.fake.stop()
        if pg_url is not None:
            try:
                pg_drop(args.pg_admin_url, pg_url)
            except Exception as e:
                notes.append(f"could not drop the PostgreSQL database: {e}")
        if mysql_url is not None:
            try:
                mysql_drop(mysql_url)
            except Exception as e:
                notes.append(f"could not drop the MariaDB database: {e}")
        tmp_dir.cleanup()
    return build_report(args, targets, notes)


def build_report(
    args: argparse.Namespace, targets: list[Target], notes: list[str]
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "config": {
            "burst_updates": args.updates,
            "steady_rate": args.rate,
            "steady_seconds": args.duration,
            "reps": args.reps,
            "db": args.db,
            "log_level": args.log_level,
        },
        "bots": {},
        "ratios": {},
        "notes": notes,
    }
    for target in targets:
        entry: dict[str, Any] = {
            "startup_s": round(target.startup_s, 2) if target.startup_s else None,
            "idle_rss_mb": round(target.idle_rss_kb / 1024, 1),
            "peak_rss_mb": round(target.peak_rss_kb / 1024, 1),
        }
        if target.error:
            entry["error"] = target.error[-500:]
        for mode, runs in target.runs.items():
            entry[mode] = summarize(runs)
        report["bots"][target.name] = entry
        if target.other_methods_summary():
            entry["other_methods"] = target.other_methods_summary()
    bare = report["bots"].get("bare", {})
    for name in ("sqlite", "postgres", "mysql"):
        product = report["bots"].get(name)
        if not product:
            continue
        ratios: dict[str, Any] = {}
        for mode in ("burst", "steady"):
            if mode not in product or mode not in bare:
                continue
            ratios[mode] = {
                key: _ratio(product[mode][key], bare[mode][key])
                for key in ("replies_per_s", "p50_ms", "p99_ms", "cpu_ms_per_update")
            }
        ratios["peak_rss_mb"] = _ratio(product["peak_rss_mb"], bare.get("peak_rss_mb"))
        report["ratios"][name] = ratios
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    c = report["config"]
    print(
        f"\nmachine: {m['cpu']}, nproc {m['nproc']}, Python {m['python']}, aiogram {m['aiogram']}, "
        f"load {m['loadavg_at_start']} → {m.get('loadavg_at_end')}; medians of {c['reps']} "
        f"rep(s); burst = "
        f"{c['burst_updates']} queued at once, steady = {c['steady_rate']:g}/s for "
        f"{c['steady_seconds']:g} s; product LOG_LEVEL {c.get('log_level', 'WARNING')}"
    )
    header = (
        f"{'mode':7}{'bot':18}{'replies/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/upd':>11}"
        f"{'DB ms/upd':>10}{'bot CPU':>8}{'fake CPU':>9}{'others':>7}{'peak RSS':>9}"
        f"{'x thr':>7}{'x p99':>7}{'x CPU':>7}"
    )
    print(header)
    print("-" * len(header))
    bots = report["bots"]
    for mode in ("burst", "steady"):
        for name, entry in bots.items():
            s = entry.get(mode)
            if not s:
                continue
            r = report["ratios"].get(name, {}).get(mode, {})
            label = "bare aiogram" if name == "bare" else f"product/{name}"
            print(
                f"{mode:7}{label:18}{_f(s['replies_per_s'], 10, 0)}{_f(s['p50_ms'], 9, 1)}"
                f"{_f(s['p99_ms'], 9, 1)}{_f(s['cpu_ms_per_update'], 11, 3)}"
                f"{_f(s.get('db_cpu_ms_per_update'), 10, 3)}"
                f"{_f(s['bot_cpu_util'], 8, 2)}{_f(s['fake_cpu_util'], 9, 2)}"
                f"{_f(s['others_cpu_util'], 7, 2)}"
                f"{_f(entry['peak_rss_mb'], 7, 0)} MB"
                f"{_f(r.get('replies_per_s'), 7, 2)}{_f(r.get('p99_ms'), 7, 2)}"
                f"{_f(r.get('cpu_ms_per_update'), 7, 2)}"
            )
    print(
        "x = product/bare; DB ms/upd = CPU of the PostgreSQL backends (MariaDB threads)\n"
        "serving the bot (SQLite runs inside the bot); bot CPU, fake CPU, others = CPU\n"
        "seconds per wall second of the bot process, of this process (the fake API), of\n"
        "everything else on the machine (other work on a shared machine, the database\n"
        "servers' own processes and threads)"
    )
    for name, entry in bots.items():
        extra = []
        if entry.get("startup_s"):
            extra.append(f"start to first getUpdates {entry['startup_s']} s")
        extra.append(f"RSS idle {entry['idle_rss_mb']} MB, peak {entry['peak_rss_mb']} MB")
        for mode in ("burst", "steady"):
            s = entry.get(mode) or {}
            if s.get("lost_replies") or s.get("bad_replies"):
                extra.append(f"{mode}: {s['lost_replies']} lost, {s['bad_replies']} bad replies")
        if entry.get("error"):
            extra.append("ERROR: " + entry["error"].splitlines()[0])
        print(f"  {name}: " + "; ".join(extra))
    for note in report["notes"]:
        print("  note: " + note)


def _f(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.updates", description=__doc__)
    parser.add_argument("--updates", type=int, help="K updates in a burst (default 2000)")
    parser.add_argument("--rate", type=float, help="steady updates a second (default 100)")
    parser.add_argument("--duration", type=float, help="steady seconds (default 10)")
    parser.add_argument("--reps", type=int, help="repetitions, medians reported (default 3)")
    parser.add_argument(
        "--db",
        choices=tuple(DB_CHOICES),
        default="all",
        help="the product's database(s): all = SQLite, PostgreSQL and MariaDB (BENCH_MYSQL, "
        "default mysql://root@127.0.0.1:3306); both = SQLite and PostgreSQL",
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="creates/drops the DB")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="the product's LOG_LEVEL (default WARNING; the product's own default is INFO)",
    )
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    defaults = (
        {"updates": 500, "rate": 100.0, "duration": 5.0, "reps": 1}
        if args.quick
        else {"updates": 2000, "rate": 100.0, "duration": 10.0, "reps": 3}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = asyncio.run(run(args))
    report["total_s"] = round(time.perf_counter() - started, 1)
    print_table(report)
    if not args.no_json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"updates-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        print(f"\nwritten {path.relative_to(ROOT)} (total {report['total_s']} s)")
    failed = any(entry.get("error") for entry in report["bots"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
