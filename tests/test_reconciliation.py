"""The owner's reconciliation («Сверка платежей», issue 15): the YooKassa adapter lists
payments from the fake YooKassa over HTTP (paged by its cursor), Telegram Stars are read
from the fake Bot API's getStarTransactions, and the admin page (Django's test client)
and `manage.py reconcile` show what differs first. «Зачислить» credits a missing
payment once, after asking the provider again, with the admin's name in the ledger.

Planted disagreements: «paid, not credited» is real (YooKassa says succeeded, the bill
is still WAITING: a notification lost, the poller not run yet). «Credited, not paid»
cannot come from the bot's own paths, so it is planted by calling the service with a
PAID the provider never said (what a bug or a forged answer would do) while the fake
keeps the payment pending or cancels it. «Amounts differ»: the fake's payment is changed
to another sum and succeeds, the bill stays WAITING (the poller refuses such a credit).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import AsyncClient
from django.utils import timezone

from backend.payments import services
from backend.payments.models import Bill, LedgerEntry
from backend.payments.providers.base import Quote
from backend.payments.providers.yookassa import YooKassaProvider
from backend.payments.vocabulary import BillStatus, ProviderName
from backend.users.models import TelegramUser
from tests.constants import TOKEN, YOOKASSA_KEY, YOOKASSA_SHOP_ID

PAGE = "/admin/payments/bill/reconciliation/"
CREDIT = "/admin/payments/bill/reconciliation/credit/"
BILLS = "/admin/payments/bill/"
NBSP = "\u00a0"  # between a sum and its currency sign: read as a space here


def html(response) -> str:
    return response.content.decode().replace(NBSP, " ")


@pytest.fixture
def shop(transactional_db, settings, yookassa, tg):
    """The settings reach the fake YooKassa and the fake Bot API; YooKassa is the only
    way to pay."""
    settings.PAYMENT_PROVIDERS = ["yookassa"]
    settings.YOOKASSA_SHOP_ID = YOOKASSA_SHOP_ID
    settings.YOOKASSA_SECRET_KEY = YOOKASSA_KEY
    settings.YOOKASSA_API_URL = yookassa.api_url
    settings.YOOKASSA_RETURN_URL = "https://t.me/topup_test_bot"
    settings.TELEGRAM_API_TOKEN = TOKEN
    settings.TELEGRAM_API_SERVER = tg.base_url
    yield yookassa
    connections.close_all()


@pytest.fixture
async def boss(shop) -> AsyncClient:
    client = AsyncClient()
    user = await sync_to_async(User.objects.create_superuser)("boss", "b@example.com", "pw")
    await sync_to_async(client.force_login)(user)
    return client


async def yookassa_bill(yookassa, telegram_id: int, amount: str) -> tuple[Bill, str]:
    """A bill made as the bot makes one: written, created at the fake YooKassa through
    the adapter, marked WAITING with its payment id. (bill, payment id)"""

    @sync_to_async
    def written() -> Bill:
        user, _ = TelegramUser.objects.get_or_create(
            telegram_id=telegram_id, defaults={"first_name": "Анна"}
        )
        return services.bill_create(
            user=user,
            amount=Decimal(amount),
            lifetime=timedelta(minutes=30),
            provider=ProviderName.YOOKASSA,
        )

    bill = await written()
    adapter = YooKassaProvider(
        shop_id=YOOKASSA_SHOP_ID,
        secret_key=YOOKASSA_KEY,
        api_url=yookassa.api_url,
        return_url="https://t.me/topup_test_bot",
    )
    remote = await adapter.create_bill(
        bill_id=bill.pk,
        amount=bill.amount,
        currency="RUB",
        expires_at=bill.expires_at,
        comment="Пополнение",
    )
    await adapter.close()
    bill = await sync_to_async(services.bill_mark_created)(
        bill_id=bill.pk,
        pay_url=remote.pay_url,
        provider_status=remote.provider_status,
        charge_id=remote.charge_id,
    )
    return bill, remote.charge_id


@sync_to_async
def credit_by_service(bill: Bill) -> None:
    """The service told PAID as the poller would tell it (for a bill the provider really
    paid), or as a bug would (for one it did not)."""
    services.bill_apply_status(
        bill_id=bill.pk,
        status=BillStatus.PAID,
        provider_status="succeeded",
        amount=bill.amount,
        currency=bill.currency,
    )


async def planted(yookassa) -> dict[str, str]:
    """One bill of each kind; their ids by kind."""
    ok, ok_payment = await yookassa_bill(yookassa, 6101, "100")
    yookassa.set_status(ok_payment, "succeeded")
    await credit_by_service(ok)
    lost, lost_payment = await yookassa_bill(yookassa, 6102, "250")
    yookassa.set_status(lost_payment, "succeeded")  # our bill stays WAITING
    ghost, ghost_payment = await yookassa_bill(yookassa, 6103, "700")
    await credit_by_service(ghost)  # the fake keeps it pending: credited, never paid
    yookassa.set_status(ghost_payment, "canceled")
    other, other_payment = await yookassa_bill(yookassa, 6104, "300")
    yookassa.set_amount(other_payment, "299.00")
    yookassa.set_status(other_payment, "succeeded")
    foreign = yookassa.add_payment("55.00")  # made elsewhere at the same shop
    return {
        "ok": ok.pk,
        "lost": lost.pk,
        "lost_payment": lost_payment,
        "ghost": ghost.pk,
        "other": other.pk,
        "foreign": foreign,
    }


async def reconcile(*args: str) -> tuple[int, str]:
    """`manage.py reconcile` in this process: (exit status, what it printed)."""
    out = io.StringIO()

    def run() -> int:
        try:
            call_command("reconcile", *args, stdout=out)
        except CommandError as e:
            out.write(f"\n{e}")
            return e.returncode
        return 0

    status = await sync_to_async(run)()
    return status, out.getvalue().replace(NBSP, " ")


def today() -> str:
    return timezone.localdate().isoformat()


def table_rows(page: str) -> list[tuple[str, str]]:
    """(verdict, the row's text) of each row of the page's table, in order."""
    rows = re.findall(r'<tr class="\w+" data-verdict="(\w+)">(.*?)</tr>', page, re.S)
    return [(verdict, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))) for verdict, body in rows]


@sync_to_async
def bill_and_ledger(bill_id: str) -> tuple[Bill, list[LedgerEntry]]:
    bill = Bill.objects.select_related("user").get(pk=bill_id)
    return bill, list(LedgerEntry.objects.filter(bill=bill).select_related("admin"))


# --- the command ---------------------------------------------------------------------


async def test_the_command_prints_what_differs_first_and_exits_1(shop):
    ids = await planted(shop)
    status, out = await reconcile("--since", today())
    assert status == 1, out
    lines = out.splitlines()
    assert lines[0].startswith("Сверка платежей") and "расходящихся строк: 3" in lines[0]
    body = [line for line in lines if re.search(r"ЮKassa", line)]
    kinds = [line.split("  ")[0] for line in body]
    assert kinds == [
        "оплачен у провайдера, не зачислен",
        "зачислен, не оплачен",
        "суммы расходятся",
        "платёж не от бота",
        "сходится",
    ]
    by_bill = {bill: line for line in body for bill in ids.values() if bill in line}
    assert "наш счёт: ожидает оплаты" in by_bill[ids["lost"]] and "250,00" in by_bill[ids["lost"]]
    assert "провайдер отвечает: canceled" in by_bill[ids["ghost"]]
    assert "299,00" in by_bill[ids["other"]] and "счёт выставлен на 300,00" in by_bill[ids["other"]]
    assert "расходящихся строк: 3" in lines[-1]


async def test_the_command_exits_0_when_all_agrees_and_2_on_wrong_arguments(shop):
    bill, payment = await yookassa_bill(shop, 6111, "40")
    shop.set_status(payment, "succeeded")
    await credit_by_service(bill)
    status, out = await reconcile("--since", today(), "--until", today())
    assert status == 0, out
    assert "расходящихся строк: 0" in out and "сходится" in out
    status, out = await reconcile("--since", today(), "--until", "2020-01-01")
    assert status == 2 and "before --since" in out


async def test_yookassa_down_is_an_error_line_and_exit_2(shop, boss):
    await planted(shop)
    shop.fail_next("GET", status=503, body="<html>down</html>", times=2)
    status, out = await reconcile("--since", today())
    assert status == 2
    assert "ЮKassa: не удалось прочитать платежи: YooKassa GET /payments: HTTP 503" in out
    page = await boss.get(PAGE)
    assert page.status_code == 200
    text = html(page)
    assert "ЮKassa: не удалось прочитать платежи" in text


async def test_a_list_of_several_pages_is_read_by_its_cursor(shop):
    """250 payments of the period at the shop, and a bill of ours among the oldest: three
    pages of 100, each after the first asked by the previous one's next_cursor with the
    same filters."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(250):
        shop.add_payment("10.00", created_at=start + timedelta(seconds=n))
    lost, payment = await yookassa_bill(shop, 6121, "90")
    shop.set_created_at(payment, start - timedelta(seconds=1))  # the oldest: the last page
    shop.set_status(payment, "succeeded")
    adapter = YooKassaProvider(
        shop_id=YOOKASSA_SHOP_ID, secret_key=YOOKASSA_KEY, api_url=shop.api_url
    )
    read = await adapter.list_payments(
        since=start - timedelta(minutes=1), until=datetime.now(UTC), status="succeeded"
    )
    await adapter.close()
    assert read.complete and read.pages == 3 and len(read.payments) == 251
    assert read.payments[-1].bill_id == lost.pk and read.payments[-1].paid
    assert read.payments[-1].amount == Decimal("90.00")
    lists = [r for r in shop.requests if r.method == "GET" and r.object_id is None]
    assert len(lists) == 3
    first, *rest = (r.query for r in lists)
    assert first["limit"] == "100" and first["status"] == "succeeded"
    assert first["created_at.gte"].endswith("Z") and "created_at.lt" in first
    assert "cursor" not in first and all(q["cursor"] for q in rest)
    assert all({k: v for k, v in q.items() if k != "cursor"} == first for q in rest)

    status, out = await reconcile("--since", today())
    assert status == 1
    [line] = [line for line in out.splitlines() if lost.pk in line]
    assert line.startswith("оплачен у провайдера, не зачислен")


# --- the admin page ----------------------------------------------------------------------


async def test_the_page_shows_what_differs_first_and_credit_pays_once(shop, boss, tg):
    ids = await planted(shop)
    listing = await boss.get(BILLS)
    assert PAGE in html(listing)  # the link above the bills list

    page = await boss.get(PAGE)
    assert page.status_code == 200
    rows = table_rows(html(page))
    assert [verdict for verdict, _ in rows] == [
        "not_credited",
        "not_paid",
        "amounts_differ",
        "foreign",
        "ok",
    ]
    assert "оплачен у провайдера, не зачислен" in rows[0][1] and "250,00 ₽" in rows[0][1]
    assert "Зачислить" in rows[0][1]
    assert all("Зачислить" not in text for _, text in rows[1:])  # shown, never debited
    assert "расходятся 3 строки" in html(page)

    form = {
        "provider": "yookassa",
        "bill_id": ids["lost"],
        "charge_id": ids["lost_payment"],
        "since": today(),
        "until": today(),
    }
    done = await boss.post(CREDIT, form, follow=True)
    assert f"Счёт {ids['lost']} зачислен: +250,00 ₽, баланс теперь 250,00 ₽." in (html(done))
    asked = [r for r in shop.requests if r.object_id == ids["lost_payment"] and r.method == "GET"]
    assert asked  # the payment was asked about again, not taken from the list
    bill, ledger = await bill_and_ledger(ids["lost"])
    assert bill.status == Bill.Status.PAID and bill.user.balance == Decimal("250.00")
    [entry] = ledger
    assert entry.kind == "topup" and entry.admin.username == "boss"
    assert entry.reason == "зачислено по сверке платежей"
    note = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 6102)
    assert "Платёж прошёл успешно" in note.params["text"]

    again = await boss.post(CREDIT, form, follow=True)
    assert "уже был зачислен; сейчас ничего не изменилось" in html(again)
    bill, ledger = await bill_and_ledger(ids["lost"])
    assert len(ledger) == 1 and bill.user.balance == Decimal("250.00")
    rows = table_rows(html(await boss.get(PAGE)))
    assert [verdict for verdict, _ in rows] == ["not_paid", "amounts_differ", "foreign", "ok", "ok"]


async def test_credit_asks_yookassa_again_and_credits_nothing_it_does_not_confirm(shop, boss):
    bill, payment = await yookassa_bill(shop, 6131, "500")
    shop.set_status(payment, "succeeded")
    page = html(await boss.get(PAGE))
    assert table_rows(page)[0][0] == "not_credited"
    # Between the page and the press, YooKassa's answer is no longer «succeeded».
    shop.fail_next("GET", status=200, json_body=shop.answer(payment, status="pending"))
    form = {"provider": "yookassa", "bill_id": bill.pk, "charge_id": payment}
    done = await boss.post(CREDIT, {**form, "since": today(), "until": today()}, follow=True)
    assert "не зачислен: ЮKassa отвечает, что платёж в статусе pending" in html(done)
    bill, ledger = await bill_and_ledger(bill.pk)
    assert bill.status == Bill.Status.WAITING and ledger == []


async def test_only_who_may_change_bills_gets_the_button(shop, boss):
    bill, payment = await yookassa_bill(shop, 6141, "80")
    shop.set_status(payment, "succeeded")

    @sync_to_async
    def clerk() -> AsyncClient:
        user = User.objects.create_user("clerk", password="pw", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename="view_bill"))
        client = AsyncClient()
        client.force_login(user)
        return client

    client = await clerk()
    page = await client.get(PAGE)
    assert page.status_code == 200 and table_rows(html(page))[0][0] == "not_credited"
    assert "Зачислить" not in html(page)
    form = {"provider": "yookassa", "bill_id": bill.pk, "charge_id": payment}
    refused = await client.post(CREDIT, {**form, "since": today(), "until": today()})
    assert refused.status_code == 403
    assert (await bill_and_ledger(bill.pk))[1] == []


# --- Telegram Stars and QIWI ------------------------------------------------------------


async def test_a_lost_stars_payment_is_listed_and_credited_once(shop, boss, tg, settings):
    settings.PAYMENT_PROVIDERS = ["telegram"]

    @sync_to_async
    def stars_bill() -> Bill:
        user = TelegramUser.objects.create(telegram_id=6151, first_name="Пётр")
        bill = services.bill_create(
            user=user,
            amount=Decimal("150"),
            lifetime=timedelta(minutes=30),
            provider=ProviderName.TELEGRAM,
        )
        return services.bill_mark_created(
            bill_id=bill.pk, pay_url="", provider_status="", quote=Quote("XTR", 75)
        )

    bill = await stars_bill()
    charge = tg.add_star_payment(tg.user(6151), bill.pk, 75)  # its update never came
    status, out = await reconcile("--since", today())
    assert status == 1
    [line] = [line for line in out.splitlines() if bill.pk in line]
    assert line.startswith("оплачен у провайдера, не зачислен")
    assert "Telegram Stars" in line and "75 ⭐" in line and "150,00 ₽ (75 ⭐)" in line

    form = {"provider": "telegram", "bill_id": bill.pk, "charge_id": charge}
    form |= {"since": today(), "until": today()}
    done = await boss.post(CREDIT, form, follow=True)
    assert f"Счёт {bill.pk} зачислен: +150,00 ₽" in html(done)
    again = await boss.post(CREDIT, form, follow=True)
    assert "уже был зачислен" in html(again)
    stored, ledger = await bill_and_ledger(bill.pk)
    assert (stored.status, stored.charge_id) == (Bill.Status.PAID, charge)
    assert [(e.kind, e.amount, e.admin.username) for e in ledger] == [
        ("topup", Decimal("150.00"), "boss")
    ]
    status, out = await reconcile("--since", today())
    assert status == 0, out


async def test_qiwi_bills_are_checked_against_the_ledger(shop, settings):
    settings.PAYMENT_PROVIDERS = ["qiwi"]

    @sync_to_async
    def paid_qiwi_bill() -> Bill:
        user = TelegramUser.objects.create(telegram_id=6161, first_name="Ира")
        bill = services.bill_create(user=user, amount=Decimal("60"), lifetime=timedelta(hours=1))
        services.bill_mark_created(
            bill_id=bill.pk, pay_url="https://pay.example/x", provider_status="WAITING"
        )
        services.bill_apply_status(
            bill_id=bill.pk,
            status=BillStatus.PAID,
            provider_status="PAID",
            amount=bill.amount,
            currency="RUB",
        )
        return bill

    bill = await paid_qiwi_bill()
    status, out = await reconcile("--since", today())
    assert status == 0, out
    assert "QIWI не даёт списка платежей; сверяются наши счета с журналом" in out
    [line] = [line for line in out.splitlines() if bill.pk in line]
    assert line.startswith("сходится") and "60,00 ₽" in line
