"""Webhook benchmark: the /start flood of bench/updates.py, delivered as Telegram does it.

    python -m bench.webhook [--updates K] [--rate R] [--duration S] [--reps N]
                            [--workers 1 2] [--connections 40] [--log-level L] [--quick]

Each update is a POST to the bot's webhook, the way Telegram delivers them: a JSON body,
the X-Telegram-Bot-Api-Secret-Token header, at most --connections (40, Telegram's
default max_connections) requests open at once, each connection sending its next update
when the answer to the previous one came (kept alive). The client is aiohttp, in this
process, beside bench/updates.py's fake Bot API (one per bot), which takes the replies
(sendMessage) and answers getMe/setWebhook/deleteWebhook/getWebhookInfo.

The bots, subprocesses on 127.0.0.1, each on its own free port:
- bare: bench/bare_webhook_bot.py, aiohttp + aiogram's SimpleRequestHandler, no
  database (the reference);
- product, N workers: `python runbot.py` with BOT_MODE=webhook, BOT_WORKERS=N, on a
  fresh PostgreSQL database (one per bot, copied from one migrated template, dropped at
  the end) and REDIS_URL (default redis://127.0.0.1:6379/14; the bot's keys all start
  with `topup:<bot id>:`, a fresh random bot id per run, and are deleted at the end).

A bot is ready when the fake has had setWebhook from each of its workers; then a few
updates go through unmeasured. All bots stay up for the whole run and the measurements
interleave (the order rotates each repetition), so a slow spell of the machine hits
them alike. Burst: K updates queued at once, delivered through the connections as fast
as the bot answers. Steady: R updates a second for S seconds.

Per measurement: replies/s (first update queued → last reply), p50/p99 latency from
the POST sent to the reply's sendMessage received at the fake, the POST's own answer
time, CPU per update of the bot's processes (all workers and their parent), of the
PostgreSQL backends and of the Redis server, peak RSS (VmHWM summed over the bot's
processes). Medians over the repetitions, and the ratios one worker / bare and two
workers / one worker. JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.updates import (
    PG_ADMIN_URL,
    RESULTS,
    ROOT,
    START_TIMEOUT,
    USERS,
    CpuReadings,
    Target,
    _f,
    _ratio,
    base_env,
    machine_info,
    percentile,
    pg_create,
    pg_drop,
    proc_cpu_seconds,
    proc_status_kb,
    proc_tree,
    reply_figures,
    start_update,
    summarize,
)

REDIS_URL = "redis://127.0.0.1:6379/14"
WEBHOOK_PATH = "/telegram/webhook"
WARMUP_UPDATES = 40  # one a connection: with two workers both get some
TARGET_ONE_WORKER = 0.6  # one worker's updates/s ≥ 0.6 × the bare webhook bot's
TARGET_TWO_WORKERS = 1.3  # two workers' ≥ 1.3 × one worker's
UPDATE_IDS = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- delivering updates as Telegram does ----------------------------------------


class Telegram:
    """Posts updates to one webhook: at most `connections` requests at once, kept-alive
    connections, each sending its next update when the previous one is answered."""

    def __init__(self, url: str, secret: str, connections: int) -> None:
        self.url = url
        self.connections = connections
        self.headers = {
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": secret,
        }
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=self.connections)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(
        self, fake: Any, users: range, mode: str = "burst", rate: float = 0.0
    ) -> dict[str, Any]:
        """POST one /start per user (all queued at once, or `rate` a second); returns
        when every POST is answered. The reply's latency counts from its POST's start."""
        assert self._session is not None
        session = self._session
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        answers: list[float] = []
        statuses: dict[str, int] = {}
        date = int(time.time())

        def body(user_id: int) -> tuple[int, bytes]:
            return user_id, start_update(next(UPDATE_IDS), user_id, date)

        async def connection() -> None:
            while (item := await queue.get()) is not None:
                user_id, data = item
                sent = time.perf_counter()
                fake.expect(user_id, sent)
                try:
                    async with session.post(self.url, data=data, headers=self.headers) as r:
                        await r.read()
                        status = str(r.status)
                except (aiohttp.ClientError, TimeoutError) as e:
                    status = type(e).__name__
                answers.append((time.perf_counter() - sent) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        if mode == "burst":
            for user_id in users:
                queue.put_nowait(body(user_id))
        workers = [asyncio.create_task(connection()) for _ in range(self.connections)]
        try:
            if mode != "burst":  # R a second, on an absolute schedule (catching up if late)
                t0, sent = time.perf_counter(), 0
                while sent < len(users):
                    due = min(len(users), int((time.perf_counter() - t0) * rate) + 1)
                    for user_id in users[sent:due]:
                        queue.put_nowait(body(user_id))
                    sent = due
                    await asyncio.sleep(max(0.0, t0 + sent / rate - time.perf_counter()))
            for _ in workers:
                queue.put_nowait(None)
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
        answers.sort()
        return {
            "post_statuses": statuses,
            "post_p50_ms": round(percentile(answers, 50), 1),
            "post_p99_ms": round(percentile(answers, 99), 1),
        }


# ---- the bots under test ---------------------------------------------------------


@dataclass
class WebhookTarget(Target):
    workers: int = 1
    port: int = 0
    secret: str = ""
    connections: int = 40
    telegram: Telegram | None = None
    processes: list[int] = field(default_factory=list)
    idle_rss_by_process: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.name == "bare":
            return "bare webhook bot"
        return f"product, {self.workers} worker{'s' if self.workers > 1 else ''}"

    def tree_kb(self, key: str) -> int:
        assert self.proc is not None
        total = 0
        for pid in proc_tree(self.proc.pid):
            with contextlib.suppress(OSError):
                total += proc_status_kb(pid, key)
        return total

    async def wait_ready(self) -> None:
        """Wait for setWebhook from every worker, then let a few updates through."""
        assert self.fake is not None and self.proc is not None
        deadline = time.perf_counter() + START_TIMEOUT
        while self.fake.webhook_sets < self.workers:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no setWebhook in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        self.startup_s = time.perf_counter() - self.started_at
        url = f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"
        if self.fake.webhook_url != url or self.fake.webhook_secret != self.secret:
            raise RuntimeError(f"setWebhook with {self.fake.webhook_url!r}, expected {url!r}")
        self.telegram = Telegram(url, self.secret, self.connections)
        await self.telegram.open()
        self.fake.reset(WARMUP_UPDATES)
        try:
            await asyncio.wait_for(self.telegram.deliver(self.fake, USERS.take(WARMUP_UPDATES)), 30)
            await asyncio.wait_for(self.fake.done.wait(), 30)
        except TimeoutError:
            raise RuntimeError(f"no replies to the warm-up:\n{self.log_tail()}") from None
        await asyncio.sleep(0.3)
        self.processes = proc_tree(self.proc.pid)
        if len(self.processes) < self.workers:
            raise RuntimeError(f"{len(self.processes)} processes for {self.workers} workers")
        self.idle_rss_kb = self.tree_kb("VmRSS")
        self.idle_rss_by_process = {}
        for pid in self.processes:
            with contextlib.suppress(OSError):
                self.idle_rss_by_process[str(pid)] = round(proc_status_kb(pid, "VmRSS") / 1024, 1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        tree = proc_tree(self.proc.pid)
        with contextlib.suppress(OSError):
            self.peak_rss_kb = max(self.peak_rss_kb, self.tree_kb("VmHWM"))
        self.proc.send_signal(signal.SIGINT)  # runbot's parent hands SIGTERM to the workers
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            for pid in tree:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()

    async def close(self) -> None:
        if self.telegram is not None:
            await self.telegram.close()
        if self.fake is not None:
            await self.fake.stop()


class RedisCpu:
    """CPU seconds of the Redis server (INFO cpu), which all its clients share."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5)
        self._at = self._read()

    def _read(self) -> float:
        info = self._redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def stop(self) -> float:
        try:
            return self._read() - self._at
        finally:
            self._redis.close()


def redis_check(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as e:
        raise RuntimeError(f"Redis at {url} does not answer: {e}") from None
    finally:
        client.close()


def redis_forget(url: str, bot_ids: list[int]) -> int:
    """Delete the keys of these bots (`topup:<bot id>:*`, the product's prefix)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    deleted = 0
    try:
        for bot_id in bot_ids:
            keys = list(client.scan_iter(match=f"topup:{bot_id}:*", count=1000))
            for i in range(0, len(keys), 1000):
                deleted += client.delete(*keys[i : i + 1000])
    finally:
        client.close()
    return deleted


# ---- measurements ----------------------------------------------------------------


async def measure(
    target: WebhookTarget, mode: str, n: int, rate: float, redis_url: str | None
) -> dict[str, Any]:
    fake, proc, telegram = target.fake, target.proc, target.telegram
    assert fake is not None and proc is not None and telegram is not None
    if proc.poll() is not None:
        raise RuntimeError(f"the bot exited with {proc.returncode}:\n{target.log_tail()}")
    pids = proc_tree(proc.pid)
    if len(pids) != len(target.processes):
        raise RuntimeError(f"processes {target.processes} became {pids}:\n{target.log_tail()}")
    fake.reset(n)
    users = USERS.take(n)
    bad_before = fake.bad_replies
    per_process0 = {pid: proc_cpu_seconds(pid) for pid in pids}
    redis_cpu = RedisCpu(redis_url) if redis_url else None
    readings = CpuReadings(pids, target.db)
    t0 = time.perf_counter()
    timeout = 60 + n / 20
    try:
        posts = await asyncio.wait_for(telegram.deliver(fake, users, mode, rate), timeout)
    except TimeoutError:
        posts = {"post_statuses": {"not all sent": 1}, "post_p50_ms": None, "post_p99_ms": None}
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fake.done.wait(), max(1.0, t0 + timeout - time.perf_counter()))
    cpu = await readings.stop()
    redis_s = redis_cpu.stop() if redis_cpu is not None else None
    if redis_s is not None:
        cpu["others"] = max(0.0, (cpu["others"] or 0.0) - redis_s)
    per_process = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            per_process[str(pid)] = round(proc_cpu_seconds(pid) - per_process0[pid], 2)
    rss_kb = target.tree_kb("VmHWM")
    target.peak_rss_kb = max(target.peak_rss_kb, rss_kb)
    figures = reply_figures(fake, t0, n, cpu, bad_before)
    replied = figures["replies"]
    if mode == "burst":  # as bench/updates.py counts a burst: from all queued at once
        queued = sorted((at - t0) * 1000 for at in fake.replied_at.values())
        figures["queued_p50_ms"] = round(percentile(queued, 50), 1)
        figures["queued_p99_ms"] = round(percentile(queued, 99), 1)
    return {
        **figures,
        **posts,
        "redis_cpu_ms_per_update": (
            round(redis_s * 1000 / max(replied, 1), 3) if redis_s is not None else None
        ),
        "cpu_s_by_process": per_process,
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }


EXTRA_METRICS = (
    "post_p50_ms",
    "post_p99_ms",
    "queued_p50_ms",
    "queued_p99_ms",
    "redis_cpu_ms_per_update",
)


def summarize_webhook(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = summarize(runs)
    for key in EXTRA_METRICS:
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[key] = round(statistics.median(values), 3) if values else None
    statuses: dict[str, int] = {}
    for r in runs:
        for status, count in r["post_statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    summary["post_statuses"] = statuses
    summary["reps"]["cpu_s_by_process"] = [r["cpu_s_by_process"] for r in runs]
    return summary


# ---- the run ---------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-webhook-")
    tmp = Path(tmp_dir.name)
    env = base_env(tmp, args.log_level)
    for key in ("BOT_MODE", "BOT_WORKERS", "REDIS_URL", "DATABASE_URL"):
        env.pop(key, None)
    for key in [k for k in env if k.startswith("WEBHOOK_")]:
        env.pop(key)
    targets: list[WebhookTarget] = []
    notes: list[str] = []
    databases: list[str] = []

    def make(name: str, argv: list[str], extra: dict[str, str], workers: int) -> WebhookTarget:
        workdir = tmp / name
        workdir.mkdir()
        port, secret = free_port(), f"bench-{time.time_ns()}"
        target_env = {
            **env,
            **extra,
            "LOG_DIR": str(workdir / "logs"),
            "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
            "WEBHOOK_PATH": WEBHOOK_PATH,
            "WEBHOOK_SECRET": secret,
            "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
            "WEBHOOK_MAX_CONNECTIONS": str(args.connections),
        }
        target = WebhookTarget(
            name,
            argv,
            target_env,
            workdir,
            workers=workers,
            port=port,
            secret=secret,
            connections=args.connections,
        )
        targets.append(target)
        return target

    bare = make("bare", [sys.executable, str(ROOT / "bench" / "bare_webhook_bot.py")], {}, 1)
    try:
        if args.redis_url:
            await asyncio.to_thread(redis_check, args.redis_url)
        template = pg_create(args.pg_admin_url, prefix="bench_webhook")
        databases.append(template)
        await bare.start()  # the bare bot starts while the database migrates
        cmd = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
        log_path = tmp / "migrate.log"
        with open(log_path, "wb") as log:
            migrate = subprocess.Popen(
                cmd, cwd=ROOT, env={**env, "DATABASE_URL": template}, stdout=log, stderr=log
            )
        if await asyncio.to_thread(migrate.wait) != 0:
            raise RuntimeError(f"migrate failed:\n{log_path.read_text(errors='replace')[-2000:]}")
        for workers in args.workers:
            url = (
                template
                if workers == args.workers[-1]
                else pg_create(args.pg_admin_url, prefix="bench_webhook", template=template)
            )
            if url != template:
                databases.append(url)
            extra = {
                "DATABASE_URL": url,
                "BOT_MODE": "webhook",
                "BOT_WORKERS": str(workers),
                "REDIS_URL": args.redis_url,
            }
            target = make(f"workers{workers}", [sys.executable, "runbot.py"], extra, workers)
            target.db = (args.pg_admin_url, urlsplit(url).path.lstrip("/"))
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
            + ", ".join(f"{t.label} in {t.startup_s:.1f} s" for t in live)
            + f"; {args.reps} rep(s) of burst {args.updates} and steady "
            f"{args.rate:g}/s x {args.duration:g} s, {args.connections} connections",
            file=sys.stderr,
        )
        steady_n = max(1, round(args.rate * args.duration))
        for rep in range(args.reps):
            order = live[rep % len(live) :] + live[: rep % len(live)]  # rotate the order
            for mode, n in (("burst", args.updates), ("steady", steady_n)):
                for target in order:
                    if target.error is not None:
                        continue
                    redis_url = None if target.name == "bare" else args.redis_url
                    try:
                        result = await measure(target, mode, n, args.rate, redis_url)
                    except (RuntimeError, OSError) as e:
                        target.error = str(e)
                        print(f"{target.label}: {e}", file=sys.stderr)
                        continue
                    target.runs.setdefault(mode, []).append(result)
                    print(
                        f"rep {rep + 1} {mode:6} {target.label:18} "
                        f"{result['replies']}/{n} replies, {result['replies_per_s']}/s, "
                        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                        f"CPU {result['cpu_ms_per_update']} ms/update, "
                        f"POSTs {result['post_statuses']}",
                        file=sys.stderr,
                    )
                    await asyncio.sleep(0.5)  # let the bot settle
    finally:
        for target in targets:
            await asyncio.to_thread(target.stop)
            await target.close()
        for url in reversed(databases):
            try:
                pg_drop(args.pg_admin_url, url)
            except Exception as e:
                notes.append(f"could not drop the PostgreSQL database: {e}")
        bot_ids = [int(t.token.split(":", 1)[0]) for t in targets if t.name != "bare"]
        try:
            deleted = redis_forget(args.redis_url, bot_ids) if args.redis_url else 0
            notes.append(f"deleted {deleted} Redis keys of this run's bots")
        except Exception as e:
            notes.append(f"could not delete this run's Redis keys: {e}")
        tmp_dir.cleanup()
    return build_report(args, targets, notes)


def build_report(
    args: argparse.Namespace, targets: list[WebhookTarget], notes: list[str]
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "config": {
            "burst_updates": args.updates,
            "steady_rate": args.rate,
            "steady_seconds": args.duration,
            "reps": args.reps,
            "connections": args.connections,
            "workers": args.workers,
            "db": "postgres",
            "redis_url": args.redis_url,
            "log_level": args.log_level,
        },
        "bots": {},
        "ratios": {},
        "targets": {},
        "notes": notes,
    }
    for target in targets:
        entry: dict[str, Any] = {
            "label": target.label,
            "workers": target.workers,
            "startup_s": round(target.startup_s, 2) if target.startup_s else None,
            "idle_rss_mb": round(target.idle_rss_kb / 1024, 1),
            "peak_rss_mb": round(target.peak_rss_kb / 1024, 1),
            "processes": len(target.processes),
            "idle_rss_mb_by_process": target.idle_rss_by_process,
        }
        if target.error:
            entry["error"] = target.error[-500:]
        for mode, runs in target.runs.items():
            entry[mode] = summarize_webhook(runs)
        if target.other_methods_summary():
            entry["other_methods"] = target.other_methods_summary()
        report["bots"][target.name] = entry
    bots = report["bots"]
    pairs = [(f"workers{w}", "bare") for w in args.workers[:1]]
    pairs += [(f"workers{w}", f"workers{args.workers[0]}") for w in args.workers[1:]]
    for name, base in pairs:
        a, b = bots.get(name), bots.get(base)
        if not a or not b:
            continue
        ratios: dict[str, Any] = {}
        for mode in ("burst", "steady"):
            if mode in a and mode in b:
                ratios[mode] = {
                    key: _ratio(a[mode][key], b[mode][key])
                    for key in ("replies_per_s", "p50_ms", "p99_ms", "cpu_ms_per_update")
                }
        ratios["peak_rss_mb"] = _ratio(a["peak_rss_mb"], b["peak_rss_mb"])
        report["ratios"][f"{name}/{base}"] = ratios
    one, two = f"workers{args.workers[0]}", "workers2"
    checks = [(f"{one}/bare", TARGET_ONE_WORKER, "one worker ≥ 0.6× the bare webhook bot")]
    if 2 in args.workers[1:]:
        checks.append((f"{two}/{one}", TARGET_TWO_WORKERS, "two workers ≥ 1.3× one worker"))
    for key, goal, text in checks:
        value = report["ratios"].get(key, {}).get("burst", {}).get("replies_per_s")
        report["targets"][text] = {
            "ratio": value,
            "met": None if value is None else value >= goal,
        }
    return report


def print_table(report: dict[str, Any]) -> None:
    m, c = report["machine"], report["config"]
    print(
        f"\nmachine: {m['cpu']}, nproc {m['nproc']}, Python {m['python']}, "
        f"aiogram {m['aiogram']}, load {m['loadavg_at_start']} → {m['loadavg_at_end']}; "
        f"medians of {c['reps']} rep(s); "
        f"burst = {c['burst_updates']} queued at once, steady = {c['steady_rate']:g}/s for "
        f"{c['steady_seconds']:g} s; {c['connections']} connections; PostgreSQL + "
        f"{c['redis_url']}; product LOG_LEVEL {c['log_level']}"
    )
    header = (
        f"{'mode':7}{'bot':19}{'upd/s':>7}{'p50 ms':>9}{'p99 ms':>9}{'POST p99':>9}"
        f"{'CPU ms/upd':>11}{'DB ms':>7}{'Redis ms':>9}{'bot CPU':>8}{'bench CPU':>10}"
        f"{'others':>7}{'peak RSS':>10}{'x thr':>7}{'x p99':>7}"
    )
    print(header)
    print("-" * len(header))
    bots = report["bots"]
    ratio_of = {}
    for key, ratios in report["ratios"].items():
        ratio_of[key.split("/", 1)[0]] = ratios
    for mode in ("burst", "steady"):
        for name, entry in bots.items():
            s = entry.get(mode)
            if not s:
                continue
            r = ratio_of.get(name, {}).get(mode, {})
            print(
                f"{mode:7}{entry['label']:19}{_f(s['replies_per_s'], 7, 0)}"
                f"{_f(s['p50_ms'], 9, 1)}{_f(s['p99_ms'], 9, 1)}{_f(s['post_p99_ms'], 9, 1)}"
                f"{_f(s['cpu_ms_per_update'], 11, 3)}{_f(s.get('db_cpu_ms_per_update'), 7, 3)}"
                f"{_f(s.get('redis_cpu_ms_per_update'), 9, 3)}{_f(s['bot_cpu_util'], 8, 2)}"
                f"{_f(s['fake_cpu_util'], 10, 2)}{_f(s['others_cpu_util'], 7, 2)}"
                f"{_f(entry['peak_rss_mb'], 7, 0)} MB"
                f"{_f(r.get('replies_per_s'), 7, 2)}{_f(r.get('p99_ms'), 7, 2)}"
            )
    print(
        "x = one worker / bare, two workers / one worker; p50/p99 = POST sent → reply\n"
        "received; POST p99 = the webhook's answer; CPU ms/upd = all the bot's processes;\n"
        "DB/Redis ms = CPU of the PostgreSQL backends / the Redis server per update; bot CPU,\n"
        "bench CPU (this process: the client and the fake Bot API), others = CPU seconds\n"
        "per wall second (others: the rest of the machine, PostgreSQL's own processes)"
    )
    for name, entry in bots.items():
        extra = []
        if entry.get("startup_s"):
            extra.append(f"start to setWebhook {entry['startup_s']} s")
        extra.append(
            f"{entry['processes']} process(es), RSS idle {entry['idle_rss_mb']} MB, "
            f"peak {entry['peak_rss_mb']} MB"
        )
        for mode in ("burst", "steady"):
            s = entry.get(mode) or {}
            if s.get("lost_replies") or s.get("bad_replies"):
                extra.append(f"{mode}: {s['lost_replies']} lost, {s['bad_replies']} bad replies")
            if s and set(s.get("post_statuses", {})) - {"200"}:
                extra.append(f"{mode} POSTs: {s['post_statuses']}")
        if entry.get("error"):
            extra.append("ERROR: " + entry["error"].splitlines()[0])
        print(f"  {name}: " + "; ".join(extra))
    for text, check in report["targets"].items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        print(f"  target {text}: {check['ratio']} ({verdict})")
    for note in report["notes"]:
        print("  note: " + note)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__)
    parser.add_argument("--updates", type=int, help="K updates in a burst (default 2000)")
    parser.add_argument("--rate", type=float, help="steady updates a second (default 100)")
    parser.add_argument("--duration", type=float, help="steady seconds (default 10)")
    parser.add_argument("--reps", type=int, help="repetitions, medians reported (default 3)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="BOT_WORKERS to measure"
    )
    parser.add_argument("--connections", type=int, default=40, help="requests open at once")
    parser.add_argument(
        "--redis-url",
        default=REDIS_URL,
        help=f"default {REDIS_URL}; empty: no Redis (one worker only: state in memory)",
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="creates/drops the DBs")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="the product's LOG_LEVEL (default WARNING, as bench.updates; the product's "
        "own default is INFO)",
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
    if len(set(args.workers)) != len(args.workers) or min(args.workers) < 1:
        parser.error("--workers: distinct whole numbers from 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = asyncio.run(run(args))
    report["total_s"] = round(time.perf_counter() - started, 1)
    print_table(report)
    if not args.no_json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"webhook-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        print(f"\nwritten {path.relative_to(ROOT)} (total {report['total_s']} s)")
    failed = any(entry.get("error") for entry in report["bots"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
