"""Broadcast benchmark: a broadcast to 100,000 users against the fake Bot API.

    python -m bench.broadcast [--users N] [--rate R] [--quick] [--fresh] [--drop]

The product (`python runbot.py`, polling, PostgreSQL with N seeded users, `BROADCAST_RATE`
= R, 1000 by default) talks to bench/updates.py's fake Bot API. Three measurements:

1. /start alone: 20 new users a second for 5 s, the latency of each greeting
   (enqueued → sendMessage received): the baseline p99.
2. The broadcast alone (queued with `manage.py broadcast`): the achieved rate (messages
   over the time from the first to the last), against R; the bot's RSS sampled every
   0.2 s, its growth from before the broadcast to the peak; no recipient twice.
3. A second broadcast with the same /start traffic beside it: the /start p99 during
   the broadcast against the baseline, and that broadcast's rate (it gives way to the
   dialog, so it is expected to be lower).

Targets (issue 16): rate ≥ 95 % of R, RSS growth ≤ 50 MB, /start p99 during ≤ 2×
without. JSON goes to bench/results/. Not a test: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import seed
from bench.updates import (
    GREETING_START,
    USERS,
    FakeBotApi,
    base_env,
    percentile,
    proc_status_kb,
    random_token,
)

TEXT = "<b>Новости</b>: бенчмарк рассылки"
START_RATE = 20.0  # /start updates a second beside the broadcast
START_SECONDS = 5.0


class BroadcastFake(FakeBotApi):
    """The fake Bot API, telling the broadcast's messages from the greetings."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.broadcast_at: list[float] = []
        self.broadcast_chats: set[int] = set()
        self.duplicates = 0

    def _send_message(self, params: dict[str, Any]) -> web.Response:
        if str(params.get("text") or "") == TEXT:
            chat_id = int(params.get("chat_id") or 0)
            if chat_id in self.broadcast_chats:
                self.duplicates += 1
            self.broadcast_chats.add(chat_id)
            self.broadcast_at.append(time.perf_counter())
            params = {**params, "text": GREETING_START + "(broadcast)"}  # not a bad reply
            chat_id = 0  # not a greeting either
            params["chat_id"] = str(chat_id)
        return super()._send_message(params)


async def start_traffic(fake: BroadcastFake, seconds: float) -> list[float]:
    """/start from new users at START_RATE for `seconds`; the greetings' latencies (ms)."""
    fake.reset()
    users: list[int] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = USERS.take(1)
        users += list(batch)
        fake.enqueue(batch)
        await asyncio.sleep(1 / START_RATE)
    deadline = time.perf_counter() + 30
    while len([u for u in users if u in fake.replied_at]) < len(users):
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.05)
    return sorted(
        (fake.replied_at[u] - fake.enqueued_at[u]) * 1000 for u in users if u in fake.replied_at
    )


async def broadcast_run(
    fake: BroadcastFake, name: str, pid: int, *, traffic: bool
) -> dict[str, Any]:
    fake.broadcast_at.clear()
    fake.broadcast_chats.clear()
    rss_before = proc_status_kb(pid, "VmRSS")
    queued_at = time.perf_counter()
    out = seed.manage(name, "broadcast", "--text", TEXT).stdout.strip()
    seed.log(out)
    recipients = int(out.split(": ")[1].split()[0])  # «broadcast 7 queued: 99800 recipients»
    peak = rss_before
    latencies: list[float] = []
    traffic_task = None
    if traffic:
        while not fake.broadcast_at:  # the broadcast is under way
            await asyncio.sleep(0.01)
        traffic_task = asyncio.create_task(start_traffic(fake, START_SECONDS))
    deadline = time.perf_counter() + recipients / 10 + 120
    while len(fake.broadcast_chats) < recipients and time.perf_counter() < deadline:
        peak = max(peak, proc_status_kb(pid, "VmRSS"))
        await asyncio.sleep(0.2)
    if traffic_task is not None:
        latencies = await traffic_task
    times = fake.broadcast_at
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "recipients": recipients,
        "sent": len(fake.broadcast_chats),
        "duplicates": fake.duplicates,
        "queued_to_first_s": round(times[0] - queued_at, 2) if times else None,
        "span_s": round(span, 2),
        "rate": round((len(times) - 1) / span, 1) if span else None,
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_peak_mb": round(peak / 1024, 1),
        "rss_growth_mb": round((peak - rss_before) / 1024, 1),
        "start_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "start_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "start_replies": len(latencies),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    name, users = "topup_bench_broadcast", args.users
    if args.fresh:
        seed.drop_database(name)
    seed.ensure_users(name, users)
    token = random_token()
    fake = BroadcastFake(token)
    await fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-broadcast-"))
    env = {
        **base_env(tmp, log_level="INFO"),
        "DATABASE_URL": seed.db_url(name),
        "BROADCAST_RATE": str(args.rate),
        "TELEGRAM_API_TOKEN": token,
        "TELEGRAM_API_SERVER": fake.url,
    }
    with open(tmp / "bot.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "runbot.py"], cwd=seed.ROOT, env=env, stdout=log, stderr=log
        )
    try:
        await asyncio.wait_for(fake.polled.wait(), 90)
        await start_traffic(fake, 1.0)  # warm-up
        baseline = await start_traffic(fake, START_SECONDS)
        alone = await broadcast_run(fake, name, proc.pid, traffic=False)
        beside = await broadcast_run(fake, name, proc.pid, traffic=True)
    finally:
        proc.terminate()
        try:  # in a thread: the fake in this loop must answer the bot while it stops
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            seed.log("the bot did not stop in 60 s: killed")
            proc.kill()
            proc.wait()
        await fake.stop()
        if args.drop:
            seed.drop_database(name)
    p99 = round(percentile(baseline, 99), 1)
    return {
        "machine": seed.machine(),
        "config": {"users": users, "rate": args.rate, "start_rate": START_RATE},
        "start_alone": {"p50_ms": round(percentile(baseline, 50), 1), "p99_ms": p99},
        "broadcast_alone": alone,
        "broadcast_with_starts": beside,
        "targets": {
            "rate_of_setting": round((alone["rate"] or 0) / args.rate, 3),
            "rss_growth_mb": alone["rss_growth_mb"],
            "start_p99_ratio": round((beside["start_p99_ms"] or 0) / p99, 2) if p99 else None,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="10,000 users")
    seed.add_database_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.users = 10_000
    report = asyncio.run(run(args))
    print(seed.table(["measure", "figure"], [[k, v] for k, v in report["targets"].items()]))
    print(report["broadcast_alone"], report["broadcast_with_starts"], report["start_alone"])
    seed.write_results("broadcast", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
