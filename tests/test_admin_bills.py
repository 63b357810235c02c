"""«Проверить сейчас в QIWI» in the bills admin: the poller's transition, from the admin,
against the fake QIWI; the user hears of the payment through the fake Bot API."""

from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async

from backend.payments import services
from backend.payments.models import Bill
from backend.payments.providers.qiwi import QiwiProvider
from backend.users.models import TelegramUser
from tests.conftest import QIWI_KEY

URL = "/admin/payments/bill/"


@sync_to_async
def open_bills(amounts: dict[int, str]) -> list[Bill]:
    bills = []
    for telegram_id, amount in amounts.items():
        user = TelegramUser.objects.create(telegram_id=telegram_id, first_name="A")
        bills.append(
            services.bill_create(user=user, amount=Decimal(amount), lifetime=timedelta(minutes=5))
        )
    return bills


@sync_to_async
def refreshed(bill: Bill) -> Bill:
    return Bill.objects.select_related("user").get(pk=bill.pk)


async def test_check_now_credits_paid_bills_and_tells_their_users(boss_client, tg, qiwi):
    paid, waiting = await open_bills({4001: "80", 4002: "90"})
    provider = QiwiProvider(secret_key=QIWI_KEY, api_url=qiwi.base_url)
    for bill in (paid, waiting):
        remote = await provider.create_bill(
            bill_id=bill.pk,
            amount=bill.amount,
            currency="RUB",
            expires_at=bill.expires_at,
            comment="",
        )
        await sync_to_async(services.bill_mark_created)(
            bill_id=bill.pk, pay_url=remote.pay_url, provider_status=remote.status
        )
    await provider.close()
    qiwi.set_status(paid.pk, "PAID")

    response = await boss_client.post(
        URL, {"action": "check_now", "_selected_action": [paid.pk, waiting.pk]}, follow=True
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Проверено счетов: 2; изменили статус: 1, из них оплачено и зачислено: 1" in text
    assert (await refreshed(paid)).status == Bill.Status.PAID
    assert (await refreshed(paid)).user.balance == Decimal("80.00")
    assert (await refreshed(waiting)).status == Bill.Status.WAITING
    note = await tg.wait_call("sendMessage")
    assert note.params["chat_id"] == 4001 and "Платёж прошёл успешно" in note.params["text"]


async def test_check_now_reports_bills_qiwi_could_not_answer(boss_client, tg, qiwi):
    [bill] = await open_bills({4003: "10"})
    await sync_to_async(services.bill_mark_created)(
        bill_id=bill.pk, pay_url="https://pay.example/x", provider_status="WAITING"
    )
    qiwi.fail_next("GET", status=503, body="<html>down</html>")
    response = await boss_client.post(
        URL, {"action": "check_now", "_selected_action": [bill.pk]}, follow=True
    )
    assert "не удалось проверить: 1" in response.content.decode()
    assert (await refreshed(bill)).status == Bill.Status.WAITING
    await tg.assert_no_call("sendMessage", within=0.3)
