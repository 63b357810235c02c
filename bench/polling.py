"""One poller round over 10,000 open bills (1,000 with --quick) against a fake QIWI.

The fake is tests/fakes/qiwi.py's FakeQiwi, run in a subprocess (so its CPU does not
share the poller's event loop), with its `bills` pre-filled (all WAITING) and 50 ms
added to every answer. The poller runs in-process: `poll_once(provider=QiwiProvider(
api_url=<fake>, max_connections=C), notify=<no-op>, concurrency=C)` for each C, then
the variants: ~10 % of the answers are 429 (no Retry-After), and one bill never answers
within the provider's timeout.

SQL queries are counted by an execute wrapper that a `connection_created` receiver
attaches to every connection, in whatever thread opens it: the poller's database work
runs in sync_to_async's thread, where CaptureQueriesContext in the main thread sees
nothing.

    python -m bench.polling [--quick] [--concurrency 8 64 128] [--latency 0.05] [--fresh]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from bench import seed

TARGET_S = 10.0

BILLS_SQL = """
INSERT INTO payments_bill
    (id, user_id, provider, amount, currency, status, provider_status, pay_url, error,
     created_at, expires_at, status_changed_at, credited_at, invoice_currency, charge_id,
     provider_charge_id)
SELECT
    'bench' || lpad(i::text, 8, '0'), user_id, 'qiwi', 100 + i % 1000, 'RUB', 'WAITING',
    'WAITING', 'https://oplata.qiwi.com/form/?invoice_uid=bench' || i, '',
    now() - interval '1 minute' + i * interval '1 millisecond', now() + interval '1 day',
    now(), NULL, '', '', ''
FROM (SELECT id AS user_id, row_number() OVER (ORDER BY id) AS i
      FROM users_telegramuser ORDER BY id LIMIT {n}) AS s
"""


def bill_ids(n: int) -> list[str]:
    return [f"bench{i:08d}" for i in range(1, n + 1)]


def ensure_bills(name: str, n: int) -> None:
    """`n` WAITING bills, one per user, that expire tomorrow (so no round rejects one)."""
    seed.ensure_users(name, n)
    have = seed.scalar(
        name, "SELECT count(*) FROM payments_bill WHERE status = 'WAITING' AND id LIKE 'bench%'"
    )
    total = seed.scalar(name, "SELECT count(*) FROM payments_bill")
    conn = seed.connect(name)
    try:
        with conn.cursor() as cur:
            if have != n or total != n:
                seed.log(f"{name}: writing {n:,} WAITING bills...")
                cur.execute("DELETE FROM payments_bill")
                cur.execute(BILLS_SQL.format(n=int(n)))
                cur.execute("VACUUM ANALYZE payments_bill")
            cur.execute("UPDATE payments_bill SET expires_at = now() + interval '1 day'")
    finally:
        conn.close()


# --- the fake QIWI, in its own process ------------------------------------------------------


def serve_fake(options: dict) -> None:
    """Runs in the subprocess: FakeQiwi with latency, 429s and slow bills; prints its URL."""
    import random

    from aiohttp import web

    from tests.fakes._server import now_iso
    from tests.fakes.qiwi import FakeQiwi, qiwi_error

    latency = options["latency"]
    slow = set(options["slow_ids"])
    rng = random.Random(42)

    class BenchQiwi(FakeQiwi):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.stats = {"requests": 0, "answered_429": 0, "inflight": 0, "max_inflight": 0}
            self.stats["last_normal_answer_at"] = 0.0

        def _build_app(self) -> web.Application:
            app = web.Application()
            app.router.add_route("*", "/__bench/{action}", self._control)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            return app

        async def _control(self, request: web.Request) -> web.Response:
            self.stats["cpu_s"] = time.process_time()  # the fake's own CPU, so far
            if request.match_info["action"] == "reset":
                self.stats.update(requests=0, answered_429=0, max_inflight=0)
                self.stats["last_normal_answer_at"] = 0.0
                self.requests.clear()
                body = await request.json()
                self.p429 = body["p429"]
                self.slow_on = body["slow"]
            return web.json_response(self.stats)

        async def _handle(self, request: web.Request) -> web.Response:
            stats = self.stats
            stats["requests"] += 1
            stats["inflight"] += 1
            stats["max_inflight"] = max(stats["max_inflight"], stats["inflight"])
            try:
                bill_id = request.path.rsplit("/", 1)[-1]
                is_slow = self.slow_on and bill_id in slow
                await asyncio.sleep(options["slow_delay"] if is_slow else latency)
                if self.p429 and rng.random() < self.p429:
                    stats["answered_429"] += 1
                    error = qiwi_error("api.too.many.requests", "Too many requests")
                    return web.json_response(error, status=429)
                response = await super()._handle(request)
                if not is_slow:
                    stats["last_normal_answer_at"] = time.time()
                return response
            finally:
                stats["inflight"] -= 1
                self.requests.clear()  # the parent's record of requests would only grow

    async def main() -> None:
        fake = BenchQiwi(secret_key=options["secret_key"])
        fake.p429, fake.slow_on = 0.0, False
        now = now_iso()
        for number, bill_id in enumerate(bill_ids(options["bills"]), start=1):
            fake.bills[bill_id] = {
                "siteId": fake.site_id,
                "billId": bill_id,
                "amount": {"currency": "RUB", "value": f"{100 + number % 1000}.00"},
                "status": {"value": "WAITING", "changedDateTime": now},
                "customFields": {},
                "comment": "bench",
                "creationDateTime": now,
                "expirationDateTime": now,
                "payUrl": f"https://oplata.qiwi.com/form/?invoice_uid=bench{number}",
            }
        await fake.start()
        print(fake.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
        await fake.stop()

    asyncio.run(main())


class FakeProcess:
    def __init__(self, **options) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.polling", "--serve-fake", json.dumps(options)],
            cwd=seed.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit("the fake QIWI did not start")

    def control(self, action: str, **body) -> dict:
        import httpx

        return httpx.post(f"{self.url}/__bench/{action}", json=body, timeout=10).json()

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the poller, in-process -------------------------------------------------------------------


@dataclass
class QueryCounter:
    """Counts (and times) every SQL statement on any connection, in any thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    find: int = 0
    other: int = 0
    seconds: float = 0.0
    threads: set = field(default_factory=set)

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - started
            finding = 'ORDER BY "payments_bill"."created_at"' in sql
            with self.lock:
                self.seconds += took
                self.threads.add(threading.get_ident())
                if finding:
                    self.find += 1
                else:
                    self.other += 1

    def reset(self) -> None:
        with self.lock:
            self.find = self.other = 0
            self.seconds = 0.0
            self.threads = set()


def setup_django(name: str) -> QueryCounter:
    os.environ.update(seed.django_env(name, LOG_LEVEL="ERROR"))
    import django

    django.setup()
    from django.db.backends.signals import connection_created

    counter = QueryCounter()

    def attach(sender, connection, **kwargs) -> None:
        if counter not in connection.execute_wrappers:
            connection.execute_wrappers.append(counter)

    connection_created.connect(attach, weak=False)
    return counter


async def one_round(
    *, fake: FakeProcess, secret_key: str, concurrency: int, timeout: float, p429: float,
    counter: QueryCounter, failures: list, slow: bool = False,
) -> dict:  # fmt: skip
    from backend.payments.poller import poll_once
    from backend.payments.providers.qiwi import QiwiProvider

    async def notify(transition) -> None:
        return None

    fake_cpu = fake.control("reset", p429=p429, slow=slow)["cpu_s"]
    provider = QiwiProvider(
        secret_key=secret_key, api_url=fake.url, timeout=timeout, max_connections=concurrency
    )
    counter.reset()
    failures.clear()
    cpu = time.process_time()
    wall_started = time.time()
    started = time.perf_counter()
    checked = await poll_once(provider=provider, notify=notify, concurrency=concurrency)
    took = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await provider.close()
    stats = fake.control("stats")
    fake_cpu = stats["cpu_s"] - fake_cpu
    last_normal = stats["last_normal_answer_at"]
    return {
        "concurrency": concurrency,
        "p429": p429,
        "timeout_s": timeout,
        "bills": checked,
        "seconds": took,
        "bills_per_s": checked / took if took else 0,
        "queries_find": counter.find,
        "queries_other": counter.other,
        "db_seconds": counter.seconds,
        "db_threads": len(counter.threads),
        "poller_cpu_s": cpu,
        "poller_cpu_ms_per_bill": cpu * 1000 / checked if checked else 0,
        "fake_cpu_s": fake_cpu,
        "qiwi_requests": stats["requests"],
        "qiwi_429": stats["answered_429"],
        "qiwi_max_inflight": stats["max_inflight"],
        "not_checked": len(failures),
        "not_checked_sample": failures[:2],
        "last_normal_answer_s": last_normal - wall_started if last_normal else None,
    }


async def run(args, name: str, n: int, counter: QueryCounter) -> list[dict]:
    from loguru import logger

    from tests.fakes.qiwi import make_secret_key

    failures: list[str] = []
    # The poller logs each bill it could not check; count them (the log level is ERROR).
    logger.add(
        lambda message: failures.append(message.record["message"]),
        level="WARNING",
        filter=lambda record: "not checked" in record["message"],
    )
    secret_key = make_secret_key()
    slow_id = bill_ids(n)[0]  # the oldest bill: the round starts with it
    fake = FakeProcess(
        secret_key=secret_key,
        bills=n,
        latency=args.latency,
        slow_ids=[slow_id] if args.slow else [],
        slow_delay=args.slow_delay,
    )
    rounds = []
    try:
        # A warm-up round (connections, imports), not reported.
        await one_round(
            fake=fake, secret_key=secret_key, concurrency=max(args.concurrency),
            timeout=args.timeout, p429=0.0, counter=counter, failures=failures,
        )  # fmt: skip
        ms = f"{args.latency * 1000:g} ms"
        plan = [(ms, c, args.timeout, 0.0, False) for c in args.concurrency]
        top = max(args.concurrency)
        plan.append((f"{ms}, ~{args.p429:.0%} 429", top, args.timeout, args.p429, False))
        if args.slow:
            silent = f"{ms}, 1 bill silent {args.slow_delay:g} s, timeout {args.timeout:g} s"
            plan.append((silent, top, args.timeout, 0.0, True))
        for label, concurrency, timeout, p429, slow in plan:
            seed.log(f"round: {label}, concurrency {concurrency}...")
            result = await one_round(
                fake=fake, secret_key=secret_key, concurrency=concurrency, timeout=timeout,
                p429=p429, counter=counter, failures=failures, slow=slow,
            )  # fmt: skip
            result["variant"] = label
            rounds.append(result)
    finally:
        fake.close()
    return rounds


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-fake":
        serve_fake(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 bills, not 10,000")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64, 128])
    parser.add_argument("--latency", type=float, default=0.05, help="fake QIWI latency, s")
    parser.add_argument("--p429", type=float, default=0.1, help="share of 429 answers")
    parser.add_argument("--timeout", type=float, default=5.0, help="provider timeout, s")
    parser.add_argument("--slow-delay", type=float, default=30.0, help="the silent bill, s")
    parser.add_argument("--no-slow", dest="slow", action="store_false")
    parser.add_argument("--fresh", action="store_true", help="drop and reseed the database")
    parser.add_argument("--drop", action="store_true", help="drop the database when done")
    args = parser.parse_args()

    n = 1_000 if args.quick else 10_000
    name = f"topup_bench_poll_{n // 1000}k"
    if args.fresh:
        seed.drop_database(name)
    ensure_bills(name, n)
    machine = seed.machine()
    counter = setup_django(name)
    rounds = asyncio.run(run(args, name, n, counter))

    rows = []
    for r in rounds:
        last = r["last_normal_answer_s"]
        rows.append(
            [
                r["variant"],
                r["concurrency"],
                f"{r['seconds']:.2f}",
                f"{r['bills_per_s']:.0f}",
                r["queries_find"],
                r["queries_other"],
                f"{r['db_seconds']:.2f}",
                f"{r['poller_cpu_s']:.1f}",
                f"{r['poller_cpu_ms_per_bill']:.2f}",
                f"{r['fake_cpu_s']:.1f}",
                r["qiwi_max_inflight"],
                r["qiwi_429"],
                r["not_checked"],
                f"{last:.2f}" if last is not None else "",
                "ok" if r["seconds"] <= TARGET_S * n / 10_000 else "MISSED",
            ]
        )
    headers = [
        "variant", "C", "round s", "bills/s", "find q", "other q", "SQL s", "CPU s",
        "CPU ms/bill", "fake CPU s",
        "max in flight", "429s", "not checked", "last normal answer s", "target",
    ]  # fmt: skip
    print(f"\nOne poll_once round over {n:,} WAITING bills, fake QIWI +{args.latency * 1000:g} ms")
    print(f"machine: {machine}")
    print(seed.table(headers, rows))
    print(
        "find q: queries that select the bills to check; other q: the rest (a bill whose "
        "status did not change costs none; a change is applied in a transaction of its own, "
        "whose BEGIN and COMMIT are not counted).\n"
        "CPU: the poller's process (sys included); fake CPU: the fake QIWI's process.\n"
        "429s: answers 429 (each bill is asked again in the round, after a pause).\n"
        "not checked: bills the round logged as 'not checked, will retry next round'."
    )
    seed.write_results(
        "polling",
        {
            "bench": "polling",
            "bills": n,
            "database": name,
            "machine": machine,
            "latency_s": args.latency,
            "rounds": rounds,
        },
    )
    if args.drop:
        seed.drop_database(name)


if __name__ == "__main__":
    main()
