"""`GET /metrics` (backend/common/metrics.py): the counters move by what the bot really did,
and with PROMETHEUS_MULTIPROC_DIR the view adds up every process.

The default registry is global to the test process and other tests count into it too:
each test reads the values before and after and checks the difference."""

import asyncio
import os
import sys
import textwrap

import pytest
from aiogram.types import Update
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from backend.bot import texts
from backend.bot.middlewares import UpdateMetrics
from backend.common import metrics
from tests.helpers import ROOT, db_bills, open_bill

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape() -> Samples:
    """GET /metrics through a real aiohttp server, parsed as Prometheus parses it."""
    app = web.Application()
    app.router.add_get("/metrics", metrics.metrics_view)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples) -> dict[str, float]:
    """The differences of the series this file checks, by a short name."""
    series = {
        "message": ("topup_updates_total", {"type": "message"}),
        "callback_query": ("topup_updates_total", {"type": "callback_query"}),
        "message errors": ("topup_update_errors_total", {"type": "message"}),
        "callback_query errors": ("topup_update_errors_total", {"type": "callback_query"}),
        "sendMessage ok": (
            "topup_telegram_requests_total",
            {"method": "sendMessage", "status": "ok"},
        ),
        "sendMessage 429": (
            "topup_telegram_requests_total",
            {"method": "sendMessage", "status": "429"},
        ),
        "sendMessage 5xx": (
            "topup_telegram_requests_total",
            {"method": "sendMessage", "status": "5xx"},
        ),
        "created": ("topup_bills_total", {"provider": "qiwi", "event": "created"}),
        "paid": ("topup_bills_total", {"provider": "qiwi", "event": "paid"}),
        "expired": ("topup_bills_total", {"provider": "qiwi", "event": "expired"}),
        "failed": ("topup_bills_total", {"provider": "qiwi", "event": "failed"}),
        "rubles": ("topup_credited_rubles_total", {"provider": "qiwi"}),
        "poll rounds": ("topup_poll_round_seconds_count", {"provider": "qiwi"}),
    }
    return {
        short: value(after, name, **labels) - value(before, name, **labels)
        for short, (name, labels) in series.items()
    }


async def settled(before: Samples, expected: dict[str, float], timeout: float = 5.0):
    """The differences once `expected` is reached (a request is counted when the bot has
    read its answer, a moment after the fake recorded it); all of them, for the caller
    to compare."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        after = await scrape()
        diff = moved(before, after)
        if all(diff[k] >= v for k, v in expected.items()) or loop.time() > deadline:
            return after, diff
        await asyncio.sleep(0.05)


async def test_a_dialog_a_429_and_a_paid_bill_are_counted(make_bot, tg, qiwi):
    await make_bot(poll_interval=0.2)
    before = await scrape()
    first_call = len(tg.calls)

    user = tg.user(7101, first_name="Иван")
    tg.fail_next("sendMessage", status=429, retry_after=1)
    tg.send_text(user, "/start")
    greeting = await tg.wait_call("sendMessage", timeout=6)  # after the 429 was waited out
    assert greeting.params["text"].startswith("Привет, Иван")
    await open_bill(tg, user, "250")  # /start, «Пополнить баланс», 250, «Подтвердить»
    [bill] = await db_bills(7101)
    qiwi.set_status(bill.pk, "PAID")
    paid = await tg.wait_call("sendMessage", lambda p: "Платёж прошёл успешно" in p["text"])
    assert paid.params["chat_id"] == 7101

    sends = [c for c in tg.calls[first_call:] if c.method == "sendMessage"]
    sent_ok = sum(not c.failed for c in sends)
    assert sent_ok == 6 and len(sends) == 7  # greeting ×2, amount, confirm, bill, paid
    expected = {
        "message": 3,  # /start twice, the amount
        "callback_query": 2,  # «Пополнить баланс», «Подтвердить»
        "message errors": 0,
        "callback_query errors": 0,
        "sendMessage ok": sent_ok,
        "sendMessage 429": 1,
        "sendMessage 5xx": 0,
        "created": 1,
        "paid": 1,
        "expired": 0,
        "failed": 0,
        "rubles": 250.0,
    }
    after, diff = await settled(before, {**expected, "poll rounds": 1})
    assert diff.pop("poll rounds") >= 1  # the round that found the payment, at least
    assert diff == expected
    sum_moved = value(after, "topup_poll_round_seconds_sum", provider="qiwi") - value(
        before, "topup_poll_round_seconds_sum", provider="qiwi"
    )
    assert sum_moved > 0


async def test_a_failing_handler_is_counted_and_still_handled(bot, tg):
    before = await scrape()
    tg.fail_next("sendMessage", status=500, description="Internal Server Error")
    tg.send_text(tg.user(7102), "/start")  # the greeting fails: the handler raises
    support = await tg.wait_call("sendMessage")  # the error handler's message
    assert support.params["text"] == texts.SUPPORT
    _, diff = await settled(before, {"message errors": 1, "sendMessage 5xx": 1})
    assert diff["message"] == 1
    assert diff["message errors"] == 1
    assert diff["sendMessage 5xx"] == 1


def update(**event) -> Update:
    return Update.model_validate({"update_id": 1, **event})


MESSAGE = {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "hi"}


async def test_the_update_middleware_counts_by_type_and_lets_errors_through():
    middleware = UpdateMetrics()
    before = await scrape()

    async def ok(event, data):
        return "done"

    async def broken(event, data):
        raise RuntimeError("handler failed")

    assert await middleware(ok, update(message=MESSAGE), {}) == "done"
    with pytest.raises(RuntimeError, match="handler failed"):
        await middleware(broken, update(message=MESSAGE), {})
    with pytest.raises(RuntimeError):
        await middleware(broken, update(), {})  # a type aiogram does not know
    after = await scrape()

    def delta(name: str, update_type: str) -> float:
        return value(after, name, type=update_type) - value(before, name, type=update_type)

    assert delta("topup_updates_total", "message") == 2
    assert delta("topup_update_errors_total", "message") == 1
    assert delta("topup_updates_total", "unknown") == 1
    assert delta("topup_update_errors_total", "unknown") == 1


# --- several processes ---------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from types import SimpleNamespace

    from backend.common import metrics

    updates, rubles = int(sys.argv[1]), Decimal(sys.argv[2])
    for _ in range(updates):
        metrics.count_update("message")
    metrics.count_request("sendMessage", "429")
    metrics.bill_created("qiwi")
    bill = SimpleNamespace(status="PAID", provider="qiwi", amount=rubles)
    metrics.bill_transition(SimpleNamespace(bill=bill, changed=True, credited=True))
    with metrics.poll_round_timer("qiwi"):
        pass
    """
)


async def run_worker(folder, updates: int, rubles: str) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(updates), rubles, cwd=ROOT, env=env
    )
    assert await process.wait() == 0


async def test_in_multiprocess_mode_the_view_adds_up_every_process(tmp_path, monkeypatch):
    folder = tmp_path / "metrics"  # created by the first process that counts
    await asyncio.gather(run_worker(folder, 2, "100.50"), run_worker(folder, 3, "200"))
    assert list(folder.glob("counter_*.db")), "the workers wrote no files"

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    samples = await scrape()  # this process counts in memory: only the files are read
    assert value(samples, "topup_updates_total", type="message") == 5
    assert value(samples, "topup_update_errors_total", type="message") == 0
    requests = value(samples, "topup_telegram_requests_total", method="sendMessage", status="429")
    assert requests == 2
    assert value(samples, "topup_bills_total", provider="qiwi", event="created") == 2
    assert value(samples, "topup_bills_total", provider="qiwi", event="paid") == 2
    assert value(samples, "topup_credited_rubles_total", provider="qiwi") == 300.5
    assert value(samples, "topup_poll_round_seconds_count", provider="qiwi") == 2

    # Whoever starts the workers empties the directory first: the old counts are gone,
    # and nothing but prometheus_client's files is touched.
    (folder / "notes.txt").write_text("keep me")
    (folder / "data.db").write_text("not prometheus_client's")
    metrics.reset_multiprocess_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["data.db", "notes.txt"]
    (folder / "data.db").unlink()  # MultiProcessCollector would read it as its own
    samples = await scrape()
    assert value(samples, "topup_updates_total", type="message") == 0


BROKEN_DIR = textwrap.dedent(
    """
    import os, shutil
    from backend.common import metrics

    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"])  # removed under a running bot
    metrics.count_update("message", failed=True)
    metrics.count_request("sendMessage", "ok")
    metrics.bill_created("qiwi")
    with metrics.poll_round_timer("qiwi"):
        pass
    print("still running")
    """
)


async def test_counting_into_a_lost_directory_breaks_nothing(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "gone")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BROKEN_DIR,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "still running"
    assert err.decode().count("metrics: counting") == 1  # said once
