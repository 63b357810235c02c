"""Faults of QIWI while a bill is created: the user gets the support message, the
admins get a report, the bill is marked failed, nothing is credited, no secret leaks."""

import pytest
from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.log_setup import LOG_FILE_NAME
from backend.payments.models import Bill, LedgerEntry
from tests.constants import ADMIN_ID, QIWI_KEY, TOKEN
from tests.fakes import qiwi_error
from tests.helpers import button, db_bills, open_bill

FAULTS = {
    "server error": {"status": 500},
    "not json": {"status": 502, "body": "<html>Bad Gateway</html>"},
    "error json": {"status": 400, "json_body": qiwi_error("validation.error", "bad amount")},
    "wrong key": {"status": 401},
    "missing fields": {"status": 200, "json_body": {"billId": "x", "status": {"value": "WAITING"}}},
    "timeout": {"status": 200, "delay": 3},  # the provider's timeout in the tests is 2 s
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_qiwi_failure_on_creation(bot, tg, qiwi, fault, log_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pyqiwip2p would drop its crash reports here
    log_file = log_dir / LOG_FILE_NAME
    seen = log_file.stat().st_size if log_file.exists() else 0
    user = tg.user(3001)
    qiwi.fail_next("PUT", **fault)
    reply = await open_bill(tg, user, "100")
    assert reply.params["chat_id"] == 3001
    assert reply.params["text"] == "Что-то пошло не так. Отчет отправлен в службу поддержки."
    assert button(reply, texts.TOP_UP_BUTTON)  # the dialog starts over
    report = await tg.wait_call("sendMessage")
    assert report.params["chat_id"] == ADMIN_ID
    assert "не создан" in report.params["text"]

    [bill] = await db_bills(3001)
    assert bill.status == Bill.Status.FAILED and bill.error
    assert await sync_to_async(LedgerEntry.objects.count)() == 0
    with log_file.open(encoding="utf-8") as f:
        f.seek(seen)
        log = f.read()
    assert "ERROR    | backend.bot.handlers.topup:" in log
    assert f"bill {bill.pk} for user 3001 not created" in log
    assert "Traceback" in log
    assert list(tmp_path.iterdir()) == []  # no QiwiCrash_*.txt
    for secret in (TOKEN, QIWI_KEY, QIWI_KEY[:40]):
        assert secret not in log
    assert QIWI_KEY not in report.params["text"]


async def test_wrong_key_is_named_in_the_log(bot, tg, qiwi, log_dir):
    qiwi.fail_next("PUT", status=401)
    await open_bill(tg, tg.user(3002), "100")
    log = (log_dir / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert "check QIWI_SECRET_KEY" in log
