"""«Проверить сейчас у платёжного сервиса» in the bills admin: the poller's transition,
from the admin, against the fake QIWI; the user hears of the payment through the fake Bot
API. The action needs the change permission on bills: seeing them is not enough."""

from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import AsyncClient

from backend.payments import services
from backend.payments.models import Bill
from backend.payments.providers.qiwi import QiwiProvider
from backend.users.models import TelegramUser
from tests.constants import QIWI_KEY, TOKEN

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


async def create_at_qiwi(qiwi, bills: list[Bill]) -> None:
    provider = QiwiProvider(secret_key=QIWI_KEY, api_url=qiwi.base_url)
    for bill in bills:
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


async def test_check_now_credits_paid_bills_and_tells_their_users(boss_client, tg, qiwi):
    paid, waiting = await open_bills({4001: "80", 4002: "90"})
    await create_at_qiwi(qiwi, [paid, waiting])
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


# --- who may check --------------------------------------------------------------------


@pytest.fixture
async def staff(transactional_db, settings, tg, qiwi):
    """A staff member's client with the given permissions; the admin reaches the fakes."""
    settings.QIWI_SECRET_KEY = QIWI_KEY
    settings.QIWI_API_URL = qiwi.base_url
    settings.TELEGRAM_API_TOKEN = TOKEN
    settings.TELEGRAM_API_SERVER = tg.base_url

    @sync_to_async
    def make(*codenames: str) -> AsyncClient:
        user = User.objects.create_user("clerk", password="pw", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        client = AsyncClient()
        client.force_login(user)
        return client

    yield make
    await sync_to_async(connections.close_all)()


def offered_actions(response) -> list[str]:
    form = response.context["action_form"]
    return [] if form is None else [name for name, _ in form.fields["action"].choices if name]


async def test_seeing_bills_is_not_enough_to_check_them_now(staff, tg, qiwi):
    [bill] = await open_bills({4004: "70"})
    await create_at_qiwi(qiwi, [bill])
    qiwi.set_status(bill.pk, "PAID")
    asked = len(qiwi.requests)
    client = await staff("view_bill")

    page = await client.get(URL)
    assert page.status_code == 200
    assert bill.pk in page.content.decode()  # the bills are seen
    assert "check_now" not in offered_actions(page)
    assert "Проверить сейчас" not in page.content.decode()

    forged = await client.post(URL, {"action": "check_now", "_selected_action": [bill.pk]})
    assert forged.status_code in (200, 302)
    assert len(qiwi.requests) == asked  # QIWI was not asked
    bill = await refreshed(bill)
    assert bill.status == Bill.Status.WAITING and bill.user.balance == Decimal("0.00")
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_the_change_permission_allows_checking_now_but_bills_stay_read_only(staff, tg, qiwi):
    [bill] = await open_bills({4005: "60"})
    await create_at_qiwi(qiwi, [bill])
    qiwi.set_status(bill.pk, "PAID")
    client = await staff("view_bill", "change_bill")

    page = await client.get(URL)
    assert "check_now" in offered_actions(page)
    assert "refund" not in offered_actions(page)  # that one has its own permission
    response = await client.post(
        URL, {"action": "check_now", "_selected_action": [bill.pk]}, follow=True
    )
    assert "Проверено счетов: 1; изменили статус: 1, из них оплачено и зачислено: 1" in (
        response.content.decode()
    )
    bill = await refreshed(bill)
    assert bill.status == Bill.Status.PAID and bill.user.balance == Decimal("60.00")
    note = await tg.wait_call("sendMessage")
    assert note.params["chat_id"] == 4005

    # The bill itself is still read-only: its page has no form to save, a POST is refused.
    change_url = f"{URL}{bill.pk}/change/"
    assert "_save" not in (await client.get(change_url)).content.decode()
    refused = await client.post(change_url, {"status": "waiting", "amount": "1"})
    assert refused.status_code == 403
    assert (await refreshed(bill)).status == Bill.Status.PAID
