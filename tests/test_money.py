"""Money is exact on every database: kopecks in integer columns, `Decimal` above them.

Run on the database of the run (CI: PostgreSQL, then SQLite, where a `DecimalField`
used to be REAL and `balance + 0.30 - 0.10` stored 0.19999999999999998).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.common.money import MAX_AMOUNT
from backend.payments import services
from backend.payments.models import Bill, LedgerEntry
from backend.payments.providers.base import Quote
from backend.payments.selectors import ledger_sum
from backend.payments.services import BalanceError
from backend.users.models import TelegramUser
from tests.provider_words import bill_apply_qiwi_status

LIST_URL = "/admin/users/telegramuser/"
LIFETIME = timedelta(minutes=5)
_next_id = iter(range(7_000_000, 8_000_000))


def new_user() -> TelegramUser:
    return TelegramUser.objects.create(telegram_id=next(_next_id), first_name="Тест")


def stored(user: TelegramUser) -> object:
    """The balance column as the database holds it, before any conversion."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT balance FROM users_telegramuser WHERE id = %s", [user.pk])
        return cursor.fetchone()[0]


def balance(user: TelegramUser) -> Decimal:
    return TelegramUser.objects.values_list("balance", flat=True).get(pk=user.pk)


@pytest.fixture
def boss(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def adjust(client: Client, user: TelegramUser, **data):
    url = f"{LIST_URL}{user.pk}/adjust/"
    form = client.get(url).context["form"]
    data = {
        "reason": "сверка",
        "seen_balance": form["seen_balance"].value(),
        "key": form["key"].value(),
        **data,
    }
    return client.post(url, data)


def listed(client: Client, balance_filter: str) -> set[int]:
    response = client.get(LIST_URL, {"balance": balance_filter})
    return {u.telegram_id for u in response.context["cl"].result_list}


def test_tenths_add_up_and_the_balance_can_be_cleared(boss):
    """+0.30 −0.10 stored 0.19999999999999998 on SQLite; −0.20 and «set to 0» were then
    refused as going below zero."""
    user = new_user()
    for amount in ("0,30", "-0,10"):
        assert adjust(boss, user, amount=amount).status_code == 302
    assert stored(user) == 20  # kopecks, an integer on every database
    assert balance(user) == Decimal("0.20")
    export = b"".join(boss.get(f"{LIST_URL}export/csv/").streaming_content).decode("utf-8-sig")
    assert f'"{user.telegram_id}";"";"Тест";"";"0,20";"Нет";' in export
    assert adjust(boss, user, amount="-0,20").status_code == 302
    assert balance(user) == Decimal("0.00") == ledger_sum(user=user)

    assert adjust(boss, user, amount="0,30").status_code == 302
    assert adjust(boss, user, amount="-0,10").status_code == 302
    assert adjust(boss, user, set_to="0").status_code == 302
    assert balance(user) == Decimal("0.00") == ledger_sum(user=user)


def test_a_sum_that_comes_to_zero_is_zero_for_the_filters(boss):
    """+0.10 +0.20 −0.30 stored 5.551115123125783e-17: «ноль» left the user out, «больше
    нуля» took them in, and «set to 5» was refused."""
    user = new_user()
    for amount in ("0.10", "0.20", "-0.30"):
        assert adjust(boss, user, amount=amount).status_code == 302
    assert stored(user) == 0
    assert user.telegram_id in listed(boss, "zero")
    assert user.telegram_id not in listed(boss, "positive")
    assert adjust(boss, user, set_to="5").status_code == 302
    assert balance(user) == Decimal("5.00") == ledger_sum(user=user)
    assert user.telegram_id in listed(boss, "positive")


def test_the_ledger_and_bills_hold_kopecks_too(db):
    user = new_user()
    bill = services.bill_create(user=user, amount=Decimal("1234.56"), lifetime=LIFETIME)
    services.bill_mark_created(bill_id=bill.pk, pay_url="", provider_status="WAITING")
    bill_apply_qiwi_status(bill_id=bill.pk, status="PAID", amount=bill.amount, currency="RUB")
    with connection.cursor() as cursor:
        cursor.execute("SELECT amount FROM payments_bill WHERE id = %s", [bill.pk])
        assert cursor.fetchone()[0] == 123456
        cursor.execute(
            "SELECT amount, balance_after FROM payments_ledgerentry WHERE bill_id = %s", [bill.pk]
        )
        assert tuple(cursor.fetchone()) == (123456, 123456)
    entry = LedgerEntry.objects.get(bill=bill)
    assert (entry.amount, entry.balance_after) == (Decimal("1234.56"), Decimal("1234.56"))
    assert str(Bill.objects.get(pk=bill.pk).amount) == "1234.56"


def test_the_balance_stops_at_its_documented_maximum(db):
    user = new_user()
    services.balance_adjust(user=user, amount=MAX_AMOUNT, reason="максимум")
    assert balance(user) == MAX_AMOUNT
    with pytest.raises(BalanceError, match=r"cannot exceed|не может быть больше"):
        services.balance_adjust(user=user, amount=Decimal("0.01"), reason="сверх")
    with pytest.raises(BalanceError):  # refused before the database is asked
        services.balance_adjust(user=user, amount=MAX_AMOUNT + 1, reason="сверх")
    services.balance_adjust(user=user, amount=-MAX_AMOUNT, reason="обратно")
    assert balance(user) == Decimal("0.00") == ledger_sum(user=user)


# --- the migration: decimals (REAL on SQLite) become kopecks without loss --------------

BEFORE = [("users", "0007_filter_indexes"), ("payments", "0005_telegram_payments")]


@pytest.mark.skipif(
    connection.vendor == "mysql",
    reason="no MySQL database held rubles: MySQL came after the kopecks (an empty ALTER)",
)
@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_stored_decimals_into_exact_kopecks():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO users_telegramuser (telegram_id, username, first_name, last_name, "
                "language_code, balance, is_blocked, created_at, last_seen_at) VALUES "
                "(42, '', 'Тест', '', '', 0.30, %s, %s, %s)",
                [False, "2026-11-01 10:00:00+00:00", "2026-11-01 10:00:00+00:00"],
            )
            # The arithmetic the services did in SQL: REAL on SQLite, exact on PostgreSQL.
            cursor.execute("UPDATE users_telegramuser SET balance = balance - 0.10")
            cursor.execute("SELECT id FROM users_telegramuser WHERE telegram_id = 42")
            user_id = cursor.fetchone()[0]
            cursor.execute(
                "INSERT INTO payments_ledgerentry (user_id, amount, balance_after, kind, reason, "
                "created_at) VALUES (%s, 0.30, 0.30, 'adjustment', 'a', %s), "
                "(%s, -0.10, 0.20, 'adjustment', 'b', %s)",
                [user_id, "2026-11-01 10:00:00+00:00", user_id, "2026-11-01 10:00:01+00:00"],
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    user = TelegramUser.objects.get(telegram_id=42)
    assert stored(user) == 20
    assert user.balance == Decimal("0.20") == ledger_sum(user=user)
    assert [(e.amount, e.balance_after) for e in LedgerEntry.objects.order_by("id")] == [
        (Decimal("0.30"), Decimal("0.30")),
        (Decimal("-0.10"), Decimal("0.20")),
    ]
    # The append-only trigger survived SQLite's table rebuild.
    with pytest.raises(Exception, match="append-only"), connection.cursor() as cursor:
        cursor.execute("UPDATE payments_ledgerentry SET reason = 'x'")


# --- property: any sequence of changes keeps balance == sum(ledger), exactly -------------

SMALL = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000"), places=2)
EDGY = st.sampled_from(
    [Decimal("0.10"), Decimal("0.20"), Decimal("0.30"), MAX_AMOUNT, MAX_AMOUNT - 1]
)
ANY = st.decimals(min_value=Decimal("0.01"), max_value=MAX_AMOUNT, places=2)
POSITIVE = st.one_of(SMALL, SMALL, EDGY, ANY)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("topup"), st.one_of(SMALL, EDGY)),
        st.tuples(st.just("stars"), SMALL),  # paid in Stars, then refunded
        st.tuples(st.just("adjust"), POSITIVE, st.booleans()),
        st.tuples(st.just("set"), st.one_of(st.just(Decimal("0.00")), POSITIVE)),
        st.tuples(st.just("refund")),
    ),
    max_size=12,
)


def _topup(user: TelegramUser, amount: Decimal) -> Bill:
    bill = services.bill_create(user=user, amount=amount, lifetime=LIFETIME)
    services.bill_mark_created(bill_id=bill.pk, pay_url="", provider_status="WAITING")
    bill_apply_qiwi_status(bill_id=bill.pk, status="PAID", amount=amount, currency="RUB")
    return bill


def _stars(user: TelegramUser, amount: Decimal) -> Bill:
    bill = services.bill_create(user=user, amount=amount, lifetime=LIFETIME, provider="telegram")
    services.bill_mark_created(
        bill_id=bill.pk, pay_url="", provider_status="WAITING", quote=Quote("XTR", 7)
    )
    services.bill_pay_reported(
        bill_id=bill.pk,
        telegram_id=user.telegram_id,
        currency="XTR",
        total=7,
        charge_id=f"charge-{bill.pk}",
    )
    return bill


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
def test_any_sequence_of_changes_keeps_the_ledger_and_the_balance_equal(db, operations):
    user = new_user()
    expected = Decimal("0.00")
    refundable: list[Bill] = []
    for operation in operations:
        kind, *args = operation
        if kind in ("topup", "stars"):
            amount = args[0]
            credit = _topup if kind == "topup" else _stars
            if expected + amount > MAX_AMOUNT:
                with pytest.raises(BalanceError):
                    credit(user, amount)  # the bill stays open: nothing is credited
                continue
            bill = credit(user, amount)
            if kind == "stars":
                refundable.append(bill)
            expected += amount
        elif kind == "adjust":
            amount = args[0] if args[1] else -args[0]
            allowed = Decimal(0) <= expected + amount <= MAX_AMOUNT
            try:
                services.balance_adjust(user=user, amount=amount, reason="проверка")
            except BalanceError:
                assert not allowed, f"{amount:+} on {expected} was refused"
            else:
                assert allowed, f"{amount:+} on {expected} was allowed"
                expected += amount
        elif kind == "set":
            target = args[0]
            if target == expected:
                continue
            services.balance_adjust(
                user=user, amount=target - expected, reason="сверка", expected_balance=expected
            )
            expected = target
        elif kind == "refund" and refundable:
            bill = refundable.pop()
            try:
                services.bill_refund_begin(bill_id=bill.pk)
            except BalanceError:
                assert expected < bill.amount, f"refund of {bill.amount} on {expected} refused"
            else:
                assert expected >= bill.amount
                expected -= bill.amount
        now = balance(user)
        assert now == expected == ledger_sum(user=user)
        assert now >= 0
        assert isinstance(stored(user), int)
