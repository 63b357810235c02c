"""Fiscal receipts (54-ФЗ) end to end: the bot asks a user once for an e-mail or phone
(real aiogram against the fake Bot API), keeps it, and every YooKassa payment carries the
receipt (the adapter against the fake YooKassa, which checks the receipt's fields); the
Telegram provider-token invoice carries the same receipt in its provider_data."""

import os
import subprocess
import sys
from decimal import Decimal

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.checks import bot_settings_errors
from backend.payments.models import Bill
from backend.payments.providers.base import ProviderError, ProviderRefused
from backend.payments.providers.yookassa import YooKassaProvider
from backend.payments.receipts import ReceiptContactError, ReceiptSettings
from backend.users.services import user_set_receipt_contact, user_upsert
from tests.constants import ADMIN_ID, PROVIDER_TOKEN, YOOKASSA_BASIC, YOOKASSA_KEY, YOOKASSA_SHOP_ID
from tests.helpers import ROOT, ask_to_pay, button, db_bills, db_user, open_bill, press_confirm

RECEIPTS = {"YOOKASSA_RECEIPTS": True, "YOOKASSA_VAT_CODE": 4, "YOOKASSA_TAX_SYSTEM_CODE": 2}


@pytest.fixture
async def start(make_bot, yookassa):
    """The bot with YooKassa as its only way to pay and receipts on (`**changes` to the
    provider settings), the fake YooKassa a shop that requires receipts."""

    async def started(*, payments=("yookassa",), **changes):
        yookassa.receipts_required = True
        settings = {**RECEIPTS, **changes}
        return await make_bot(payments=payments, yookassa=yookassa, provider_settings=settings)

    return started


def receipt(amount: str, customer: dict, *, vat_code: int = 4, tax_system: int | None = 2):
    """The receipt the bot should send for a top-up of `amount` rubles (whole)."""
    value = Decimal(amount)
    made = {
        "customer": customer,
        "items": [
            {
                "description": "Пополнение баланса",
                "quantity": "1.00",
                "amount": {"value": f"{value:.2f}", "currency": "RUB"},
                "vat_code": vat_code,
                "payment_subject": "service",
                "payment_mode": "full_payment",
            }
        ],
    }
    if tax_system is not None:
        made["tax_system_code"] = tax_system
    return made


def creates(yookassa) -> list:
    return [r for r in yookassa.requests if r.method == "POST"]


async def asked_for_contact(tg, user: dict, amount_text: str):
    """The dialog up to «Подтвердить»; returns the bot's next message (the question)."""
    press_confirm(tg, user, await ask_to_pay(tg, user, amount_text))
    return await tg.wait_call("sendMessage")


# --- the dialog -------------------------------------------------------------------------


async def test_the_bot_asks_once_refuses_a_bad_contact_and_the_payment_carries_the_receipt(
    start, tg, yookassa
):
    await start()
    user = tg.user(7101)
    question = await asked_for_contact(tg, user, "1 000")
    assert question.params["text"] == texts.ASK_RECEIPT_CONTACT
    assert "почту или номер телефона" in question.params["text"]
    assert button(question, texts.CANCEL_BUTTON)

    for bad in ("ivan.petrov", "ivan@mail", "+7 916 123", "+1 212 555 0100", "a@b@c.ru"):
        tg.send_text(user, bad)
        refused = await tg.wait_call("sendMessage")
        assert refused.params["text"] == texts.BAD_RECEIPT_CONTACT
        assert button(refused, texts.CANCEL_BUTTON)
    assert (await db_user(7101)).receipt_contact == ""
    assert await db_bills(7101) == [] and creates(yookassa) == []

    tg.send_text(user, "  Ivan.Petrov@Mail.ru ")
    saved = await tg.wait_call("sendMessage")
    assert saved.params["text"] == texts.receipt_contact_saved("Ivan.Petrov@Mail.ru")
    assert "Ivan.Petrov@Mail.ru" in saved.params["text"] and "/receipt" in saved.params["text"]
    bill_message = await tg.wait_call("sendMessage")
    [bill] = await db_bills(7101)
    assert button(bill_message, texts.PAY_LINK_BUTTON)["url"] == bill.pay_url
    assert (await db_user(7101)).receipt_contact == "Ivan.Petrov@Mail.ru"
    [create] = creates(yookassa)
    assert create.json["receipt"] == receipt("1000", {"email": "Ivan.Petrov@Mail.ru"})
    payment = yookassa.payment_of(bill.pk)
    assert yookassa.receipts[payment["id"]] == create.json["receipt"]
    assert payment["receipt_registration"] == "pending"

    # The second top-up asks nothing: the bill comes at once, with the same contact.
    second = await open_bill(tg, user, "250")
    assert button(second, texts.PAY_LINK_BUTTON)
    assert creates(yookassa)[-1].json["receipt"] == receipt("250", {"email": "Ivan.Petrov@Mail.ru"})
    asked = [c for c in tg.calls if c.params.get("text") == texts.ASK_RECEIPT_CONTACT]
    assert len(asked) == 1


@pytest.mark.parametrize(
    "written", ["+7 (916) 123-45-67", "8 916 123 45 67", "89161234567", "7-916-123-45-67"]
)
async def test_a_phone_in_the_usual_russian_forms_goes_digits_only_after_choosing_yookassa(
    start, tg, yookassa, written
):
    await start(payments=("qiwi", "yookassa"))
    user = tg.user(7102)
    press_confirm(tg, user, await ask_to_pay(tg, user, "300"))
    choice = await tg.wait_call("sendMessage")
    tg.press(
        user, tg.message_of(choice), button(choice, texts.PAY_YOOKASSA_BUTTON)["callback_data"]
    )
    question = await tg.wait_call("sendMessage")
    assert question.params["text"] == texts.ASK_RECEIPT_CONTACT
    tg.send_text(user, written)
    saved = await tg.wait_call("sendMessage")
    assert "+79161234567" in saved.params["text"]
    await tg.wait_call("sendMessage")  # the bill
    assert (await db_user(7102)).receipt_contact == "79161234567"
    [create] = creates(yookassa)
    assert create.json["receipt"] == receipt("300", {"phone": "79161234567"})


async def test_qiwi_asks_nothing_beside_yookassa_with_receipts(start, tg, yookassa, qiwi):
    await start(payments=("qiwi", "yookassa"))
    user = tg.user(7103)
    press_confirm(tg, user, await ask_to_pay(tg, user, "120"))
    choice = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(choice), button(choice, texts.PAY_QIWI_BUTTON)["callback_data"])
    message = await tg.wait_call("sendMessage")
    assert button(message, texts.PAY_LINK_BUTTON)
    [bill] = await db_bills(7103)
    assert bill.provider == "qiwi" and creates(yookassa) == []


async def test_cancel_at_the_question_makes_no_bill_and_the_next_top_up_asks_again(
    start, tg, yookassa
):
    await start()
    user = tg.user(7104)
    question = await asked_for_contact(tg, user, "500")
    tg.press(user, tg.message_of(question), button(question, texts.CANCEL_BUTTON)["callback_data"])
    greeting = await tg.wait_call("sendMessage")
    assert greeting.params["text"] == texts.greeting(user["first_name"])
    assert await db_bills(7104) == []
    again = await asked_for_contact(tg, user, "500")
    assert again.params["text"] == texts.ASK_RECEIPT_CONTACT


async def test_receipt_command_changes_the_contact_and_the_next_receipt_goes_there(
    start, tg, yookassa
):
    await start()
    user = tg.user(7105)
    await asked_for_contact(tg, user, "100")
    tg.send_text(user, "old@example.com")
    await tg.wait_call("sendMessage")  # saved
    await tg.wait_call("sendMessage")  # the bill

    tg.send_text(user, "/receipt")
    change = await tg.wait_call("sendMessage")
    assert change.params["text"] == texts.receipt_contact_change("old@example.com")
    tg.send_text(user, "no phone")
    refused = await tg.wait_call("sendMessage")
    assert refused.params["text"] == texts.BAD_RECEIPT_CONTACT
    assert (await db_user(7105)).receipt_contact == "old@example.com"
    tg.send_text(user, "+7 999 000-11-22")
    saved = await tg.wait_call("sendMessage")
    assert saved.params["text"] == texts.receipt_contact_saved("79990001122")
    assert button(saved, texts.TOP_UP_BUTTON)  # nothing waited for it: back to the start
    assert len(await db_bills(7105)) == 1  # /receipt alone makes no bill

    await open_bill(tg, user, "200")
    assert creates(yookassa)[-1].json["receipt"]["customer"] == {"phone": "79990001122"}


async def test_receipts_off_no_question_no_receipt(make_bot, tg, yookassa):
    await make_bot(payments=("yookassa",), yookassa=yookassa)
    user = tg.user(7106)
    message = await open_bill(tg, user, "150")
    assert button(message, texts.PAY_LINK_BUTTON)
    [create] = creates(yookassa)
    assert "receipt" not in create.json
    tg.send_text(user, "/receipt")
    off = await tg.wait_call("sendMessage")
    assert off.params["text"] == texts.RECEIPTS_OFF
    assert (await db_user(7106)).receipt_contact == ""


async def test_a_shop_that_requires_receipts_with_receipts_off_fails_the_bill_loudly(
    make_bot, tg, yookassa, log_dir
):
    yookassa.receipts_required = True
    await make_bot(payments=("yookassa",), yookassa=yookassa)
    user = tg.user(7107)
    press_confirm(tg, user, await ask_to_pay(tg, user, "170"))
    support = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7107)
    assert support.params["text"] == texts.SUPPORT
    report = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == ADMIN_ID)
    assert "Receipt is missing or illegal" in report.params["text"]
    [bill] = await db_bills(7107)
    assert bill.status == Bill.Status.FAILED
    assert "HTTP 400" in bill.error and "receipt" in bill.error
    log = (log_dir / "bot.log").read_text("utf-8")
    assert [
        line
        for line in log.splitlines()
        if f"bill {bill.pk} for user 7107 not created" in line and "ERROR" in line
    ]
    assert "Receipt is missing or illegal" in log
    assert yookassa.payments == {}


# --- Telegram's provider-token route ------------------------------------------------------


async def test_the_provider_token_invoice_carries_the_receipt_and_asks_for_an_e_mail(make_bot, tg):
    await make_bot(
        payments=("telegram",),
        telegram_payments={"provider_token": PROVIDER_TOKEN},
        provider_settings={
            "TELEGRAM_PAYMENTS_RECEIPTS": True,
            "YOOKASSA_VAT_CODE": 6,
            "YOOKASSA_TAX_SYSTEM_CODE": None,
        },
    )
    user = tg.user(7108)
    press_confirm(tg, user, await ask_to_pay(tg, user, "250"))
    call = await tg.wait_call("sendInvoice")  # no question: Telegram asks for the e-mail
    invoice = tg.payments.invoices[(7108, tg.message_of(call)["message_id"])]
    assert invoice.need_email and invoice.send_email_to_provider
    expected = receipt("250", {}, vat_code=6, tax_system=None)
    del expected["customer"]
    assert invoice.provider_data == {"receipt": expected}
    assert (await db_user(7108)).receipt_contact == ""


async def test_without_telegram_receipts_the_invoice_carries_none(make_bot, tg):
    await make_bot(payments=("telegram",), telegram_payments={"provider_token": PROVIDER_TOKEN})
    user = tg.user(7109)
    press_confirm(tg, user, await ask_to_pay(tg, user, "90"))
    call = await tg.wait_call("sendInvoice")
    invoice = tg.payments.invoices[(7109, tg.message_of(call)["message_id"])]
    assert (invoice.provider_data, invoice.need_email, invoice.send_email_to_provider) == (
        None,
        False,
        False,
    )


# --- the contact --------------------------------------------------------------------------


@sync_to_async
def set_contact(telegram_id: int, contact: str) -> str:
    user_upsert(
        telegram_id=telegram_id, username="", first_name="A", last_name="", language_code=""
    )
    return user_set_receipt_contact(telegram_id=telegram_id, contact=contact).receipt_contact


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("name@mail.ru", "name@mail.ru"),
        (" first.last+tag@sub.example.com\n", "first.last+tag@sub.example.com"),
        ("+79161234567", "79161234567"),
        ("+7 916 123 45 67", "79161234567"),
        ("8 (916) 123-45-67", "79161234567"),
        ("79161234567", "79161234567"),
    ],
)
async def test_the_service_keeps_an_e_mail_or_a_normalised_phone(transactional_db, written, kept):
    assert await set_contact(7110, written) == kept
    assert (await db_user(7110)).receipt_contact == kept


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "name",
        "name@",
        "@mail.ru",
        "name@mail",
        "name@mail.",
        "name@.ru",
        "na me@mail.ru",
        "a@b@mail.ru",
        "x" * 250 + "@mail.ru",  # over 254 characters
        "9161234567",  # no country code
        "+7 916 123-45-6",
        "+7 916 123-45-678",
        "+1 212 555 01 00",
        "+7 916 123.45.67",
        "телефон",
    ],
)
async def test_the_service_refuses_anything_else_and_changes_nothing(transactional_db, bad):
    await set_contact(7111, "kept@mail.ru")
    with pytest.raises(ReceiptContactError):
        await set_contact(7111, bad)
    assert (await db_user(7111)).receipt_contact == "kept@mail.ru"


def test_the_admin_shows_the_contact_on_the_users_page_read_only(db, client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    user_upsert(telegram_id=7112, username="", first_name="A", last_name="", language_code="")
    user = user_set_receipt_contact(telegram_id=7112, contact="8 916 123-45-67")
    page = client.get(f"/admin/users/telegramuser/{user.pk}/change/").content.decode()
    assert "почта или телефон для чеков" in page.lower() and "79161234567" in page
    assert 'name="receipt_contact"' not in page  # shown, not editable


# --- the adapter and the fake -----------------------------------------------------------


@pytest.fixture
async def adapter(yookassa):
    """The adapter with receipts on and the default codes."""
    provider = YooKassaProvider(
        shop_id=YOOKASSA_SHOP_ID,
        secret_key=YOOKASSA_KEY,
        api_url=yookassa.api_url,
        return_url="https://example.com/back",
        receipts=ReceiptSettings(),
    )
    yield provider
    await provider.close()


async def test_the_adapter_sends_no_bill_without_a_contact(adapter, yookassa):
    with pytest.raises(ProviderError, match="no e-mail or phone"):
        await adapter.create_bill(
            bill_id="e" * 32, amount=Decimal(10), currency="RUB", expires_at=None, comment="x"
        )
    made = await adapter.create_bill(
        bill_id="e" * 32,
        amount=Decimal("10.5"),
        currency="RUB",
        expires_at=None,
        comment="y" * 200,
        receipt_contact="79161234567",
    )
    [create] = creates(yookassa)
    [item] = create.json["receipt"]["items"]
    assert item["description"] == "Пополнение баланса" and create.json["description"] == "y" * 128
    assert item["amount"] == {"value": "10.50", "currency": "RUB"} and item["vat_code"] == 1
    assert "tax_system_code" not in create.json["receipt"]
    assert made.raw["receipt_registration"] == "pending"


def _broken(change) -> dict:
    body = {
        "amount": {"value": "100.00", "currency": "RUB"},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": "https://t.me/bot"},
        "receipt": ReceiptSettings().receipt(amount=Decimal(100), currency="RUB", contact="a@b.ru"),
    }
    change(body["receipt"], body["receipt"]["items"][0])
    return body


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        (lambda r, i: r.pop("customer"), "receipt.customer"),
        (lambda r, i: r.update(customer={"phone": "+7 916"}), "receipt.customer.phone"),
        (lambda r, i: r.update(items=[]), "receipt.items"),
        (lambda r, i: i.update(description="x" * 129), "receipt.items.description"),
        (lambda r, i: i.pop("quantity"), "receipt.items.quantity"),
        (lambda r, i: i.update(amount={"value": "99.00", "currency": "RUB"}), "receipt.items"),
        (
            lambda r, i: i.update(amount={"value": "100", "currency": "RUB"}),
            "receipt.items.amount.value",
        ),
        (lambda r, i: i.update(vat_code="1"), "receipt.items.vat_code"),
        (lambda r, i: i.update(vat_code=11), "receipt.items.vat_code"),
        (lambda r, i: i.pop("payment_mode"), "receipt.items.payment_mode"),
        (lambda r, i: i.update(payment_subject=None), "receipt.items.payment_subject"),
        (lambda r, i: r.update(tax_system_code=7), "receipt.tax_system_code"),
    ],
)
async def test_the_fake_refuses_a_receipt_without_what_yookassa_requires(
    yookassa, change, parameter
):
    headers = {"Authorization": f"Basic {YOOKASSA_BASIC}", "Idempotence-Key": "k1"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            yookassa.api_url + "/payments", json=_broken(change), headers=headers
        ) as answer,
    ):
        status, body = answer.status, await answer.json()
    assert status == 400
    assert (body["code"], body["parameter"]) == ("invalid_request", parameter)
    assert yookassa.payments == {}


async def test_the_adapter_reports_the_fakes_refusal_with_its_parameter(adapter):
    with pytest.raises(ProviderRefused, match=r"receipt\.customer\.phone"):
        await adapter.create_bill(  # a contact that bypassed the service
            bill_id="f" * 32,
            amount=Decimal(10),
            currency="RUB",
            expires_at=None,
            comment="x",
            receipt_contact="12345",
        )


# --- settings -----------------------------------------------------------------------------


def settings_in_a_process(**variables: str) -> subprocess.CompletedProcess:
    code = (
        "import backend.settings as s; "
        "print(s.YOOKASSA_RECEIPTS, s.YOOKASSA_VAT_CODE, s.YOOKASSA_TAX_SYSTEM_CODE, "
        "s.TELEGRAM_PAYMENTS_RECEIPTS)"
    )
    env = {**os.environ, **variables}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_the_receipt_settings_and_their_defaults():
    plain = settings_in_a_process(
        YOOKASSA_RECEIPTS="", YOOKASSA_VAT_CODE="", YOOKASSA_TAX_SYSTEM_CODE=""
    )
    assert plain.stdout == "False 1 None False\n", plain.stderr
    chosen = settings_in_a_process(
        YOOKASSA_RECEIPTS="on",
        YOOKASSA_VAT_CODE="10",
        YOOKASSA_TAX_SYSTEM_CODE="6",
        TELEGRAM_PAYMENTS_RECEIPTS="on",
    )
    assert chosen.stdout == "True 10 6 True\n", chosen.stderr


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"YOOKASSA_VAT_CODE": "0"}, "YOOKASSA_VAT_CODE must be one of YooKassa's vat_code"),
        ({"YOOKASSA_VAT_CODE": "11"}, "1-10 (1: no VAT), got '11'"),
        ({"YOOKASSA_VAT_CODE": "20%"}, "YOOKASSA_VAT_CODE must be a whole number, got '20%'"),
        ({"YOOKASSA_TAX_SYSTEM_CODE": "7"}, "YOOKASSA_TAX_SYSTEM_CODE must be empty or one"),
        ({"YOOKASSA_TAX_SYSTEM_CODE": "0"}, "tax_system_code values 1-6, got '0'"),
    ],
)
def test_a_wrong_code_stops_the_start_with_one_line(variables, message):
    result = settings_in_a_process(**variables)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert message in last


def test_telegram_receipts_need_a_provider_token_in_rubles(settings):
    settings.PAYMENT_PROVIDERS = ["telegram"]
    settings.TELEGRAM_PAYMENTS_RECEIPTS = True
    settings.TELEGRAM_PAYMENTS_PROVIDER_TOKEN = ""
    [stars] = [e for e in bot_settings_errors() if "RECEIPTS" in e]
    assert "Telegram Stars" in stars and "TELEGRAM_PAYMENTS_PROVIDER_TOKEN is empty" in stars
    settings.TELEGRAM_PAYMENTS_PROVIDER_TOKEN = PROVIDER_TOKEN
    settings.TELEGRAM_PAYMENTS_CURRENCY = "USD"
    [dollars] = [e for e in bot_settings_errors() if "RECEIPTS" in e]
    assert "TELEGRAM_PAYMENTS_CURRENCY is USD" in dollars
    settings.TELEGRAM_PAYMENTS_CURRENCY = "RUB"
    assert not [e for e in bot_settings_errors() if "RECEIPTS" in e]
    settings.PAYMENT_PROVIDERS = ["yookassa"]  # the Telegram route is off: no matter
    settings.TELEGRAM_PAYMENTS_PROVIDER_TOKEN = ""
    assert not [e for e in bot_settings_errors() if "RECEIPTS" in e]


async def test_the_menu_offers_receipt_when_receipts_are_on(start, tg):
    await start()
    everyone = await tg.wait_call("setMyCommands", lambda p: "scope" not in p)
    assert [c["command"] for c in everyone.params["commands"]] == ["start", "balance", "receipt"]
    admins = await tg.wait_call("setMyCommands", lambda p: "scope" in p)
    assert [c["command"] for c in admins.params["commands"]][-1] == "admin"
