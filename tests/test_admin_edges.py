"""The admin's edges, tried as an attacker and as a careful operator would: huge page
numbers and sums, a form sent twice (also at once, from two threads), other scripts'
digits, an endless reason. Each gets a 400 or a clear form error and changes nothing."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from backend.common.money import MAX_AMOUNT, money_format
from backend.payments import services
from backend.payments.amounts import money_parse
from backend.payments.models import LedgerEntry
from backend.users.models import TelegramUser

LIST_URL = "/admin/users/telegramuser/"


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.fixture
def client(boss) -> Client:
    client = Client()
    client.force_login(boss)
    return client


@pytest.fixture
def ivan(db) -> TelegramUser:
    user = TelegramUser.objects.create(telegram_id=1001, first_name="Иван")
    services.balance_adjust(user=user, amount=Decimal("10.00"), reason="начальный баланс")
    user.refresh_from_db()
    return user


def form_of(client: Client, user: TelegramUser) -> dict[str, str]:
    """What a browser would send from a freshly opened form, before typing."""
    form = client.get(f"{LIST_URL}{user.pk}/adjust/").context["form"]
    return {
        "seen_balance": form["seen_balance"].value(),
        "key": form["key"].value(),
        "reason": "сверка",
    }


def post(client: Client, user: TelegramUser, data: dict[str, str]):
    return client.post(f"{LIST_URL}{user.pk}/adjust/", data)


def unchanged(user: TelegramUser) -> bool:
    return (
        TelegramUser.objects.get(pk=user.pk).balance == user.balance
        and LedgerEntry.objects.filter(user=user).count() == 1
    )


@pytest.mark.parametrize("page", ["184467440737095516", "99999999999999999999999999", "10000001"])
def test_a_page_number_past_any_list_is_a_bad_request(client, ivan, page):
    """The count's cap was computed from the page: 18+ digits overflowed SQLite (500)."""
    assert client.get(LIST_URL, {"p": page}).status_code == 400


def test_the_last_reachable_page_number_is_answered(client, ivan):
    response = client.get(LIST_URL, {"p": "10000000"})
    assert response.status_code in (200, 302)  # Django sends an empty page to ?e=1


def test_a_sum_past_the_maximum_balance_is_a_form_error(client, ivan):
    """999999999999.99 on a small balance raised decimal.InvalidOperation (500)."""
    response = post(client, ivan, {**form_of(client, ivan), "amount": "999999999999.99"})
    assert response.status_code == 200
    # «999 999 999 999,99 ₽»: the admin's one format for sums
    assert f"баланс не может быть больше {money_format(MAX_AMOUNT)}" in response.content.decode()
    assert unchanged(ivan)
    response = post(client, ivan, {**form_of(client, ivan), "amount": "9999999999999"})
    assert response.status_code == 200 and "Введите сумму цифрами" in response.content.decode()
    assert unchanged(ivan)


def test_the_balance_can_be_set_to_the_maximum_and_no_further(client, ivan):
    assert (
        post(client, ivan, {**form_of(client, ivan), "set_to": str(MAX_AMOUNT)}).status_code == 302
    )
    ivan.refresh_from_db()
    assert ivan.balance == MAX_AMOUNT
    response = post(client, ivan, {**form_of(client, ivan), "amount": "0,01"})
    assert "баланс не может быть больше" in response.content.decode()


def test_the_same_form_sent_twice_changes_the_balance_once(client, ivan):
    data = {**form_of(client, ivan), "amount": "25"}
    assert post(client, ivan, data).status_code == 302
    replay = client.post(f"{LIST_URL}{ivan.pk}/adjust/", data, follow=True)
    assert "Эта форма уже была отправлена и тогда изменила баланс на +25,00\u00a0₽" in (
        replay.content.decode()
    )
    assert TelegramUser.objects.get(pk=ivan.pk).balance == Decimal("35.00")
    assert LedgerEntry.objects.filter(user=ivan).count() == 2
    # A new form is a new change.
    assert post(client, ivan, {**form_of(client, ivan), "amount": "25"}).status_code == 302
    assert TelegramUser.objects.get(pk=ivan.pk).balance == Decimal("60.00")


def test_a_set_to_form_sent_twice_says_so_instead_of_balance_changed(client, ivan):
    data = {**form_of(client, ivan), "set_to": "100"}
    assert post(client, ivan, data).status_code == 302
    replay = client.post(f"{LIST_URL}{ivan.pk}/adjust/", data, follow=True)
    assert "уже была отправлена" in replay.content.decode()
    assert LedgerEntry.objects.filter(user=ivan).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_form_sent_from_two_places_at_once_changes_the_balance_once():
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw")
    user = TelegramUser.objects.create(telegram_id=1010, first_name="Иван")
    data = {"amount": "25", "reason": "бонус", "seen_balance": "0.00", "key": uuid.uuid4().hex}
    start = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        client = Client()
        client.force_login(boss)
        try:
            start.wait()
            statuses.append(post(client, user, data).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [302] * 4  # one changed it, the others were told it had been done
    assert TelegramUser.objects.get(pk=user.pk).balance == Decimal("25.00")
    assert LedgerEntry.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    "amount", ["١٢", "１２", "12²", "1e3", "1E3", "12.", ".5", "1,2,3", "1.234", "--5", "0x10", "∞"]
)
def test_only_plain_ascii_sums_are_taken(client, ivan, amount):
    response = post(client, ivan, {**form_of(client, ivan), "amount": amount})
    assert response.status_code == 200
    assert "Введите сумму цифрами 0–9" in response.content.decode()
    assert unchanged(ivan)


@pytest.mark.parametrize(
    ("amount", "balance"),
    [("-5", "5.00"), ("+5", "15.00"), ("2,5", "12.50"), ("1 000,25", "1010.25"), ("0.01", "10.01")],
)
def test_sums_as_people_type_them_are_taken(client, ivan, amount, balance):
    assert post(client, ivan, {**form_of(client, ivan), "amount": amount}).status_code == 302
    assert TelegramUser.objects.get(pk=ivan.pk).balance == Decimal(balance)


def test_the_reason_has_a_limit(client, ivan):
    response = post(client, ivan, {**form_of(client, ivan), "amount": "1", "reason": "я" * 100_000})
    assert response.status_code == 200
    assert "не более 500 символов" in response.content.decode()
    assert unchanged(ivan)
    assert (
        post(
            client, ivan, {**form_of(client, ivan), "amount": "1", "reason": "я" * 500}
        ).status_code
        == 302
    )


def test_the_service_refuses_a_long_reason_too(ivan):
    with pytest.raises(services.BalanceError):
        services.balance_adjust(user=ivan, amount=Decimal(1), reason="я" * 501)
    assert unchanged(ivan)


@given(st.text(max_size=20))
def test_money_parse_takes_nothing_but_ascii_digits_and_separators(text):
    value = money_parse(text)
    if value is not None:
        assert set(text.strip()) <= set("0123456789+-,. \u00a0\u202f")
        assert abs(value) <= MAX_AMOUNT and value == value.quantize(Decimal("0.01"))
