"""The write services of payments and users against a real database.

Nothing of ours is mocked: bills, the ledger and balances are written by
`backend.payments.services` and read back from the database.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from backend.payments import services
from backend.payments.amounts import amount_parse
from backend.payments.models import Bill, LedgerEntry
from backend.payments.providers.base import Quote
from backend.payments.selectors import ledger_sum
from backend.payments.services import BalanceError
from backend.users.models import TelegramUser
from backend.users.services import user_block, user_unblock, user_upsert
from tests.provider_words import bill_apply_qiwi_status

LIFETIME = timedelta(minutes=5)
_next_id = iter(range(500_000, 10_000_000))


def make_user(**fields) -> TelegramUser:
    fields.setdefault("telegram_id", next(_next_id))
    fields.setdefault("first_name", "Тест")
    return TelegramUser.objects.create(**fields)


def waiting_bill(user: TelegramUser, amount: str = "150.00") -> Bill:
    bill = services.bill_create(user=user, amount=Decimal(amount), lifetime=LIFETIME)
    return services.bill_mark_created(
        bill_id=bill.pk, pay_url=f"https://pay.example/{bill.pk}", provider_status="WAITING"
    )


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def pay(bill: Bill, **overrides) -> services.BillTransition:
    kwargs = {"bill_id": bill.pk, "status": "PAID", "amount": bill.amount, "currency": "RUB"}
    kwargs.update(overrides)
    return bill_apply_qiwi_status(**kwargs)


def ledger(user: TelegramUser) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(user=user).order_by("id"))


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_user(username="boss")  # no password: no slow hashing


# --- bill_create ---------------------------------------------------------------------


@pytest.mark.django_db
class TestBillCreate:
    @pytest.mark.parametrize(
        ("given", "stored"),
        [("10", "10.00"), ("10.5", "10.50"), ("99999.99", "99999.99"), ("0.01", "0.01")],
    )
    def test_writes_new_bill_with_quantized_amount(self, given, stored):
        user = make_user()
        before = timezone.now()
        bill = services.bill_create(user=user, amount=Decimal(given), lifetime=LIFETIME)
        after = timezone.now()

        assert str(bill.amount) == stored
        saved = reload(bill)
        assert str(saved.amount) == stored
        assert saved.status == Bill.Status.NEW
        assert saved.user_id == user.pk
        assert saved.currency == "RUB"
        assert saved.pay_url == "" and saved.credited_at is None
        assert before <= saved.created_at <= after
        assert saved.expires_at - saved.created_at == LIFETIME
        assert not LedgerEntry.objects.exists()

    def test_lifetime_is_taken_from_the_argument(self):
        bill = services.bill_create(
            user=make_user(), amount=Decimal(5), lifetime=timedelta(hours=2)
        )
        saved = reload(bill)
        assert saved.expires_at - saved.created_at == timedelta(hours=2)

    @pytest.mark.parametrize("amount", ["0", "0.00", "-5", "-0.01", "10.001", "1.999", "0.001"])
    def test_refuses_bad_amounts(self, amount):
        user = make_user()
        with pytest.raises(BalanceError):
            services.bill_create(user=user, amount=Decimal(amount), lifetime=LIFETIME)
        assert not Bill.objects.exists()

    @pytest.mark.parametrize("amount", [10, 10.5, Decimal("NaN"), Decimal("Infinity")])
    def test_refuses_non_decimal_or_non_finite(self, amount):
        with pytest.raises(BalanceError):
            services.bill_create(user=make_user(), amount=amount, lifetime=LIFETIME)
        assert not Bill.objects.exists()

    def test_ids_are_unique(self):
        user = make_user()
        bills = [
            services.bill_create(user=user, amount=Decimal(100), lifetime=LIFETIME)
            for _ in range(20)
        ]
        ids = {b.pk for b in bills}
        assert len(ids) == 20
        assert Bill.objects.filter(user=user).count() == 20
        assert all(0 < len(i) <= 64 for i in ids)


# --- bill_mark_created / bill_mark_failed --------------------------------------------


@pytest.mark.django_db
class TestBillMark:
    def test_created_moves_new_to_waiting_with_pay_url(self):
        bill = services.bill_create(user=make_user(), amount=Decimal(100), lifetime=LIFETIME)
        returned = services.bill_mark_created(
            bill_id=bill.pk, pay_url="https://pay.example/x", provider_status="WAITING"
        )
        saved = reload(bill)
        assert returned.status == saved.status == Bill.Status.WAITING
        assert saved.pay_url == "https://pay.example/x"
        assert saved.provider_status == "WAITING"

    def test_failed_moves_new_to_failed(self):
        bill = services.bill_create(user=make_user(), amount=Decimal(100), lifetime=LIFETIME)
        services.bill_mark_failed(bill_id=bill.pk, error="QIWI is unreachable")
        saved = reload(bill)
        assert saved.status == Bill.Status.FAILED
        assert saved.error == "QIWI is unreachable"
        assert not saved.is_open

    def test_failed_error_is_cut_to_2000_characters(self):
        bill = services.bill_create(user=make_user(), amount=Decimal(100), lifetime=LIFETIME)
        services.bill_mark_failed(bill_id=bill.pk, error="x" * 5000)
        assert reload(bill).error == "x" * 2000

    @pytest.mark.parametrize(
        "status",
        [Bill.Status.WAITING, Bill.Status.PAID, Bill.Status.REJECTED, Bill.Status.FAILED],
    )
    def test_neither_touches_another_status(self, status):
        bill = services.bill_create(user=make_user(), amount=Decimal(100), lifetime=LIFETIME)
        Bill.objects.filter(pk=bill.pk).update(
            status=status, pay_url="https://pay.example/old", provider_status="OLD"
        )

        returned = services.bill_mark_created(
            bill_id=bill.pk, pay_url="https://pay.example/new", provider_status="WAITING"
        )
        assert returned.status == status
        services.bill_mark_failed(bill_id=bill.pk, error="boom")

        saved = reload(bill)
        assert saved.status == status
        assert saved.pay_url == "https://pay.example/old"
        assert saved.provider_status == "OLD"
        assert saved.error == ""


# --- bill_apply_status ---------------------------------------------------------------


@pytest.mark.django_db
class TestBillApplyStatus:
    def test_waiting_keeps_a_waiting_bill_open(self):
        bill = waiting_bill(make_user())
        t = bill_apply_qiwi_status(bill_id=bill.pk, status="WAITING")
        assert t.changed is False and t.credited is False
        assert reload(bill).status == Bill.Status.WAITING
        assert not LedgerEntry.objects.exists()

    def test_waiting_moves_a_new_bill_to_waiting_with_pay_url(self):
        bill = services.bill_create(user=make_user(), amount=Decimal(100), lifetime=LIFETIME)
        t = bill_apply_qiwi_status(
            bill_id=bill.pk, status="WAITING", pay_url="https://pay.example/late"
        )
        assert t.changed is True and t.credited is False
        saved = reload(bill)
        assert saved.status == Bill.Status.WAITING
        assert saved.pay_url == "https://pay.example/late"

    def test_paid_credits_exactly_once(self):
        user = make_user()
        bill = waiting_bill(user, "150.25")

        t = pay(bill, amount=Decimal("150.25"))

        assert t.changed is True and t.credited is True
        assert t.balance == Decimal("150.25")
        assert t.mismatch is False and t.unknown_status is None
        assert t.bill.status == Bill.Status.PAID
        saved = reload(bill)
        assert saved.status == Bill.Status.PAID
        assert saved.provider_status == "PAID"
        assert saved.credited_at is not None
        assert reload(user).balance == Decimal("150.25")
        [entry] = ledger(user)
        assert entry.kind == LedgerEntry.Kind.TOPUP
        assert entry.bill_id == bill.pk
        assert entry.amount == Decimal("150.25")
        assert entry.balance_after == Decimal("150.25")
        assert entry.admin_id is None

    def test_paid_adds_to_an_existing_balance(self):
        user = make_user()
        services.balance_adjust(user=user, amount=Decimal("20.00"), reason="start")
        bill = waiting_bill(user, "30.50")
        t = pay(bill)
        assert t.balance == Decimal("50.50")
        assert reload(user).balance == Decimal("50.50")
        assert LedgerEntry.objects.get(bill=bill).balance_after == Decimal("50.50")

    def test_a_second_paid_writes_nothing(self):
        user = make_user()
        bill = waiting_bill(user)
        first = pay(bill)
        credited_at = reload(bill).credited_at

        second = pay(bill)

        assert first.credited is True
        assert second.changed is False and second.credited is False
        assert second.balance is None
        assert second.bill.status == Bill.Status.PAID
        assert len(ledger(user)) == 1
        assert reload(user).balance == bill.amount
        assert reload(bill).credited_at == credited_at

    @pytest.mark.parametrize(
        ("amount", "currency"),
        [
            (Decimal("149.99"), "RUB"),
            (Decimal("1500.00"), "RUB"),
            (None, "RUB"),
            (Decimal("150.00"), "USD"),
            (Decimal("150.00"), None),
        ],
    )
    def test_paid_with_another_amount_or_currency_does_not_credit(self, amount, currency):
        user = make_user()
        bill = waiting_bill(user, "150.00")

        t = pay(bill, amount=amount, currency=currency)

        assert t.mismatch is True
        assert t.changed is False and t.credited is False and t.balance is None
        saved = reload(bill)
        assert saved.status == Bill.Status.WAITING
        assert saved.is_open
        assert saved.credited_at is None
        assert "PAID" in saved.error and str(amount) in saved.error
        assert reload(user).balance == Decimal("0.00")
        assert not LedgerEntry.objects.exists()

    def test_a_mismatch_leaves_the_bill_payable(self):
        user = make_user()
        bill = waiting_bill(user, "150.00")
        pay(bill, amount=Decimal(1))
        t = pay(bill, amount=Decimal("150"))
        assert t.credited is True
        assert reload(user).balance == Decimal("150.00")
        assert len(ledger(user)) == 1

    @pytest.mark.parametrize(
        ("status", "expired_locally", "final"),
        [
            ("REJECTED", False, Bill.Status.REJECTED),
            ("EXPIRED", False, Bill.Status.EXPIRED),
            ("REJECTED", True, Bill.Status.EXPIRED),
            ("EXPIRED", True, Bill.Status.EXPIRED),
        ],
    )
    def test_final_statuses_without_credit(self, status, expired_locally, final):
        user = make_user()
        bill = waiting_bill(user)

        t = bill_apply_qiwi_status(bill_id=bill.pk, status=status, expired_locally=expired_locally)

        assert t.changed is True and t.credited is False and t.balance is None
        assert t.bill.status == final
        saved = reload(bill)
        assert saved.status == final
        assert saved.provider_status == status
        assert saved.credited_at is None
        assert not saved.is_open
        assert reload(user).balance == Decimal("0.00")
        assert not LedgerEntry.objects.exists()

    def test_unknown_status_keeps_the_bill_open(self):
        user = make_user()
        bill = waiting_bill(user)

        t = bill_apply_qiwi_status(
            bill_id=bill.pk, status="SOMETHING_NEW", amount=bill.amount, currency="RUB"
        )

        assert t.unknown_status == "SOMETHING_NEW"
        assert t.changed is False and t.credited is False
        saved = reload(bill)
        assert saved.status == Bill.Status.WAITING
        assert saved.provider_status == "SOMETHING_NEW"
        assert not LedgerEntry.objects.exists()
        # Still payable afterwards.
        assert pay(bill).credited is True

    def test_a_long_unknown_status_is_cut_to_the_column(self):
        bill = waiting_bill(make_user())
        status = "X" * 100
        t = bill_apply_qiwi_status(bill_id=bill.pk, status=status)
        assert t.unknown_status == status
        assert reload(bill).provider_status == "X" * 32

    @pytest.mark.parametrize("first", ["REJECTED", "EXPIRED"])
    def test_a_late_payment_after_a_closing_status_is_credited_once(self, first):
        """QIWI closed the bill, then the money came anyway: it is the user's."""
        user = make_user()
        bill = waiting_bill(user)
        bill_apply_qiwi_status(bill_id=bill.pk, status=first)

        t = pay(bill)
        again = pay(bill)

        assert t.credited is True and again.credited is False
        assert reload(bill).status == Bill.Status.PAID
        assert reload(user).balance == bill.amount
        assert LedgerEntry.objects.filter(bill=bill).count() == 1

    @pytest.mark.parametrize("later", ["WAITING", "SOMETHING_NEW", "REJECTED"])
    def test_a_closed_bill_changes_only_for_a_late_payment(self, later):
        user = make_user()
        bill = waiting_bill(user)
        bill_apply_qiwi_status(bill_id=bill.pk, status="EXPIRED")
        t = bill_apply_qiwi_status(bill_id=bill.pk, status=later)
        assert t.changed is False and reload(bill).status == Bill.Status.EXPIRED
        assert not LedgerEntry.objects.exists()

    @pytest.mark.parametrize("later", ["REJECTED", "EXPIRED", "WAITING", "SOMETHING_NEW"])
    def test_a_paid_bill_never_changes_again(self, later):
        user = make_user()
        bill = waiting_bill(user)
        pay(bill)
        before = reload(bill)

        t = bill_apply_qiwi_status(bill_id=bill.pk, status=later, expired_locally=True)

        assert t.changed is False and t.credited is False
        after = reload(bill)
        assert (after.status, after.provider_status, after.credited_at) == (
            Bill.Status.PAID,
            "PAID",
            before.credited_at,
        )
        assert reload(user).balance == bill.amount
        assert len(ledger(user)) == 1

    def test_a_failed_bill_is_never_credited(self):
        user = make_user()
        bill = services.bill_create(user=user, amount=Decimal(100), lifetime=LIFETIME)
        services.bill_mark_failed(bill_id=bill.pk, error="boom")
        t = pay(bill)
        assert t.credited is False
        assert reload(bill).status == Bill.Status.FAILED
        assert reload(user).balance == Decimal("0.00")
        assert not LedgerEntry.objects.exists()

    def test_unknown_bill_id_raises(self):
        with pytest.raises(Bill.DoesNotExist):
            bill_apply_qiwi_status(bill_id="no-such-bill", status="PAID")


# --- concurrency ---------------------------------------------------------------------


def run_together(*calls):
    """Run each call in its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls), timeout=60)
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as e:  # reported by the test, in the main thread
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_paid_credits_exactly_once():
    n = 8
    user = make_user()
    bill = waiting_bill(user, "777.77")

    transitions = run_together(*[lambda: pay(bill)] * n)

    credited = [t for t in transitions if t.credited]
    assert len(credited) == 1
    assert credited[0].balance == Decimal("777.77")
    assert sum(t.changed for t in transitions) == 1
    assert all(t.bill.status == Bill.Status.PAID for t in transitions)
    assert LedgerEntry.objects.filter(user=user).count() == 1
    assert LedgerEntry.objects.get(bill=bill).amount == Decimal("777.77")
    assert reload(user).balance == Decimal("777.77")
    assert reload(bill).status == Bill.Status.PAID


@pytest.mark.django_db(transaction=True)
def test_concurrent_bills_and_adjustment_all_count(admin):
    user = make_user()
    first = waiting_bill(user, "100.10")
    second = waiting_bill(user, "200.20")

    results = run_together(
        lambda: pay(first),
        lambda: pay(second),
        lambda: services.balance_adjust(
            user=user, amount=Decimal("7.25"), reason="race", admin=admin
        ),
    )

    assert results[0].credited and results[1].credited
    assert results[2].amount == Decimal("7.25")
    balance = reload(user).balance
    assert balance == Decimal("100.10") + Decimal("200.20") + Decimal("7.25")
    assert ledger_sum(user=user) == balance
    entries = ledger(user)
    assert sorted(e.amount for e in entries) == [Decimal("7.25"), first.amount, second.amount]
    # Each row's balance_after is the running sum in the order the writes won.
    running = Decimal("0.00")
    for entry in entries:
        running += entry.amount
        assert entry.balance_after == running


# --- the ledger ----------------------------------------------------------------------


@pytest.mark.django_db
class TestLedger:
    def test_database_refuses_a_second_topup_for_one_bill(self):
        user = make_user()
        bill = waiting_bill(user)
        pay(bill)
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(
                user=user,
                amount=bill.amount,
                balance_after=bill.amount * 2,
                kind=LedgerEntry.Kind.TOPUP,
                bill=bill,
            )
        assert LedgerEntry.objects.filter(bill=bill).count() == 1

    def test_adjustments_may_share_no_bill(self):
        # The unique constraint only covers top-ups: adjustments without a bill coexist.
        user = make_user()
        services.balance_adjust(user=user, amount=Decimal(1), reason="a")
        services.balance_adjust(user=user, amount=Decimal(1), reason="b")
        assert LedgerEntry.objects.filter(user=user, bill=None).count() == 2

    def test_database_refuses_a_topup_without_bill(self):
        user = make_user()
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(
                user=user, amount=Decimal(5), balance_after=Decimal(5), kind="topup"
            )

    def test_entries_are_append_only(self):
        user = make_user()
        entry = services.balance_adjust(user=user, amount=Decimal("5.00"), reason="gift")

        entry.reason = "changed"
        with pytest.raises(ValueError, match="append-only"):
            entry.save()
        loaded = LedgerEntry.objects.get(pk=entry.pk)
        with pytest.raises(ValueError, match="append-only"):
            loaded.save(update_fields=["reason"])
        with pytest.raises(ValueError, match="append-only"):
            loaded.delete()

        with pytest.raises(ValueError, match="append-only"):
            LedgerEntry.objects.filter(pk=entry.pk).update(reason="changed")
        with pytest.raises(ValueError, match="append-only"):
            LedgerEntry.objects.filter(pk=entry.pk).delete()

        stored = LedgerEntry.objects.get(pk=entry.pk)
        assert stored.reason == "gift" and stored.amount == Decimal("5.00")

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE payments_ledgerentry SET amount = 500",
            pytest.param(
                "DELETE FROM payments_ledgerentry",
                marks=pytest.mark.skipif(
                    connection.vendor == "sqlite",
                    reason="SQLite has no DELETE trigger: Django's test runner deletes rows",
                ),
            ),
        ],
        ids=["update", "delete"],
    )
    def test_the_database_refuses_to_change_a_row_even_in_raw_sql(self, statement):
        user = make_user()
        entry = services.balance_adjust(user=user, amount=Decimal("5.00"), reason="gift")
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
        assert LedgerEntry.objects.get(pk=entry.pk).amount == Decimal("5.00")


# --- balance_adjust ------------------------------------------------------------------


@pytest.mark.django_db
class TestBalanceAdjust:
    def test_positive_and_negative_adjustments(self, admin):
        user = make_user()

        plus = services.balance_adjust(
            user=user, amount=Decimal("100.00"), reason="  compensation ", admin=admin
        )
        minus = services.balance_adjust(
            user=user, amount=Decimal("-30.50"), reason="mistake", admin=admin
        )

        assert reload(user).balance == Decimal("69.50")
        rows = ledger(user)
        assert [r.pk for r in rows] == [plus.pk, minus.pk]
        assert [(r.kind, r.amount, r.balance_after, r.reason, r.admin_id) for r in rows] == [
            (LedgerEntry.Kind.ADJUSTMENT, Decimal("100.00"), Decimal("100.00"), "compensation",
             admin.pk),
            (LedgerEntry.Kind.ADJUSTMENT, Decimal("-30.50"), Decimal("69.50"), "mistake",
             admin.pk),
        ]  # fmt: skip
        assert all(r.bill_id is None for r in rows)

    def test_may_reach_exactly_zero(self, admin):
        user = make_user()
        services.balance_adjust(user=user, amount=Decimal("10.00"), reason="in", admin=admin)
        entry = services.balance_adjust(
            user=user, amount=Decimal("-10.00"), reason="out", admin=admin
        )
        assert entry.balance_after == Decimal("0.00")
        assert reload(user).balance == Decimal("0.00")

    def test_without_admin(self):
        user = make_user()
        entry = services.balance_adjust(user=user, amount=Decimal(3), reason="system")
        assert entry.admin is None and entry.amount == Decimal("3.00")

    @pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
    def test_empty_reason_is_refused(self, admin, reason):
        user = make_user()
        with pytest.raises(BalanceError):
            services.balance_adjust(user=user, amount=Decimal(5), reason=reason, admin=admin)
        assert reload(user).balance == Decimal("0.00")
        assert not LedgerEntry.objects.exists()

    @pytest.mark.parametrize("amount", ["0", "0.00", "-0", "1.005", "NaN"])
    def test_zero_or_bad_amount_is_refused(self, admin, amount):
        user = make_user()
        with pytest.raises(BalanceError):
            services.balance_adjust(user=user, amount=Decimal(amount), reason="why", admin=admin)
        assert not LedgerEntry.objects.exists()

    def test_going_below_zero_is_refused_and_writes_nothing(self, admin):
        user = make_user()
        services.balance_adjust(user=user, amount=Decimal("69.50"), reason="in", admin=admin)
        before = ledger(user)

        with pytest.raises(BalanceError):
            services.balance_adjust(
                user=user, amount=Decimal("-69.51"), reason="too much", admin=admin
            )

        assert reload(user).balance == Decimal("69.50")
        assert ledger(user) == before
        assert ledger_sum(user=user) == Decimal("69.50")

    def test_below_zero_from_zero(self, admin):
        user = make_user()
        with pytest.raises(BalanceError):
            services.balance_adjust(user=user, amount=Decimal("-0.01"), reason="x", admin=admin)
        assert reload(user).balance == Decimal("0.00")
        assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_balance_equals_ledger_sum_after_a_mix_of_operations(admin):
    user = make_user()
    other = make_user()
    assert ledger_sum(user=user) == Decimal("0.00") == reload(user).balance

    paid = [waiting_bill(user, a) for a in ("10.00", "250.55", "1000")]
    for bill in paid:
        pay(bill)
    pay(paid[0])  # repeated: no effect
    bill_apply_qiwi_status(bill_id=waiting_bill(user, "5").pk, status="REJECTED")
    pay(waiting_bill(user, "42"), amount=Decimal(41))  # mismatch: no effect
    pay(waiting_bill(other, "99"))  # another user's bill
    services.balance_adjust(user=user, amount=Decimal("-60.55"), reason="refund", admin=admin)
    services.balance_adjust(user=user, amount=Decimal("0.45"), reason="bonus", admin=admin)
    with pytest.raises(BalanceError):
        services.balance_adjust(user=user, amount=Decimal(-5000), reason="x", admin=admin)

    balance = reload(user).balance
    assert balance == Decimal("1200.45")
    assert ledger_sum(user=user) == balance
    assert ledger_sum(user=other) == reload(other).balance == Decimal("99.00")
    assert ledger(user)[-1].balance_after == balance


# --- users.services ------------------------------------------------------------------


@pytest.mark.django_db
class TestUsers:
    def test_upsert_creates_then_updates(self):
        created = user_upsert(
            telegram_id=4242, username="ivan", first_name="Иван", last_name=None,
            language_code="ru",
        )  # fmt: skip
        assert TelegramUser.objects.count() == 1
        stored = reload(created)
        assert (stored.username, stored.first_name, stored.last_name, stored.language_code) == (
            "ivan",
            "Иван",
            "",
            "ru",
        )
        assert stored.balance == Decimal("0.00") and stored.is_blocked is False

        long_ago = timezone.now() - timedelta(days=30)
        TelegramUser.objects.filter(pk=created.pk).update(last_seen_at=long_ago)

        updated = user_upsert(
            telegram_id=4242, username=None, first_name="Пётр", last_name="Петров",
            language_code=None,
        )  # fmt: skip
        assert updated.pk == created.pk
        assert TelegramUser.objects.count() == 1
        stored = reload(created)
        assert (stored.username, stored.first_name, stored.last_name, stored.language_code) == (
            "",
            "Пётр",
            "Петров",
            "",
        )
        assert stored.last_seen_at > long_ago
        assert stored.created_at == created.created_at

    def test_upsert_is_one_statement_whether_new_or_known(self, django_assert_num_queries):
        # MySQL has no RETURNING: it reads the row back (MariaDB has it).
        statements = 1 if connection.features.can_return_columns_from_insert else 2
        for first_name in ("Иван", "Пётр"):
            with django_assert_num_queries(statements):
                user = user_upsert(
                    telegram_id=4244, username=None, first_name=first_name, last_name=None,
                    language_code=None,
                )  # fmt: skip
            assert reload(user).first_name == first_name
            assert (user.first_name, user.balance, user.is_blocked) == (
                first_name,
                Decimal("0.00"),
                False,
            )
        assert TelegramUser.objects.filter(telegram_id=4244).count() == 1

    def test_upsert_clears_the_bots_blocked_mark(self):
        user = make_user(telegram_id=4245, bot_blocked_at=timezone.now())
        again = user_upsert(
            telegram_id=4245, username=None, first_name="A", last_name=None, language_code=None
        )
        assert again.pk == user.pk
        assert again.bot_blocked_at is None and reload(user).bot_blocked_at is None

    def test_upsert_never_changes_the_balance_or_block(self):
        user = user_upsert(
            telegram_id=4343, username="a", first_name="A", last_name="", language_code=""
        )
        pay(waiting_bill(user, "12.50"))
        user_block(telegram_id=4343)
        # `user` in memory still says balance 0.00, not blocked: the upsert must not
        # write those back.
        assert user.balance == Decimal("0.00")

        again = user_upsert(
            telegram_id=4343, username="b", first_name="B", last_name="", language_code=""
        )

        stored = reload(user)
        assert stored.balance == Decimal("12.50")
        assert again.balance == Decimal("12.50")
        assert stored.is_blocked is True
        assert stored.username == "b"
        assert ledger_sum(user=stored) == stored.balance

    def test_block_and_unblock(self):
        user = make_user(telegram_id=777)
        blocked = user_block(telegram_id=777)
        assert blocked.is_blocked is True and reload(user).is_blocked is True
        assert user_block(telegram_id=777).is_blocked is True  # idempotent
        assert reload(user).is_blocked is True

        unblocked = user_unblock(telegram_id=777)
        assert unblocked.is_blocked is False and reload(user).is_blocked is False
        assert user_unblock(telegram_id=777).is_blocked is False
        assert reload(user).is_blocked is False

    def test_block_touches_only_that_user(self):
        user = make_user(telegram_id=778)
        other = make_user(telegram_id=779)
        user_block(telegram_id=778)
        assert reload(user).is_blocked is True
        assert reload(other).is_blocked is False

    @pytest.mark.parametrize("service", [user_block, user_unblock])
    def test_unknown_id_raises(self, service):
        make_user(telegram_id=780)
        with pytest.raises(TelegramUser.DoesNotExist):
            service(telegram_id=999_999)


# --- amount_parse --------------------------------------------------------------------

MIN, MAX = Decimal(1), Decimal(100000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("100000", 100000),
        (" 500 ", 500),
        ("1 000", 1000),
        ("10 000", 10000),
        ("100 000", 100000),
        ("1\u00a0000", 1000),
        ("99999", 99999),
        # whole rubles, the way people write them
        ("100 руб", 100),
        ("100₽", 100),
        ("100 ₽", 100),
        ("100 р.", 100),
        ("100р", 100),
        ("100 РУБ.", 100),
        ("100 рублей", 100),
        ("100,00", 100),
        ("100.0", 100),
        ("1 000,00", 1000),
        ("1 000,00 руб.", 1000),
    ],
)
def test_amount_parse_accepts(text, expected):
    value = amount_parse(text, minimum=MIN, maximum=MAX)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "   ",
        "0",
        "-5",
        "+5",
        "10.5",
        "10,5",
        "1e9",
        "100001",
        "1 000 000",
        "abc",
        "１２３",  # fullwidth digits
        "١٢٣",  # Arabic-Indic digits
        "²",
        "1_000",
        "1,000",
        "NaN",
        "Infinity",
        "1  000",
        "10 00",
        "1 0000",
        "0x10",
        "9" * 4096,
        "100,50",  # kopecks: top-ups are whole rubles
        "100,5 руб",
        "100,000",
        "100 р..",
        "100  руб",
        "руб 100",
        "100 rub",
        "１００ ₽",
        "100 ₽ 100",
    ],
)
def test_amount_parse_rejects(text):
    assert amount_parse(text, minimum=MIN, maximum=MAX) is None


@pytest.mark.django_db
def test_user_upsert_stores_names_every_database_accepts():
    from backend.users.services import user_upsert

    user = user_upsert(
        telegram_id=424242,
        username="nul\x00user",
        first_name="Ив\x00ан\ud800",
        last_name=None,
        language_code="ru",
    )
    user.refresh_from_db()
    assert (user.username, user.first_name, user.last_name) == ("nuluser", "Иван?", "")


def telegram_bill(user: TelegramUser, amount: str = "150.00", stars: int = 100) -> Bill:
    bill = services.bill_create(
        user=user, amount=Decimal(amount), lifetime=LIFETIME, provider="telegram"
    )
    return services.bill_mark_created(
        bill_id=bill.pk, pay_url="", provider_status="WAITING", quote=Quote("XTR", stars)
    )


def report(bill: Bill, charge_id: str, **overrides):
    fields = {
        "bill_id": bill.pk,
        "telegram_id": bill.user.telegram_id,
        "currency": "XTR",
        "total": bill.invoice_total,
        "charge_id": charge_id,
    }
    return services.bill_pay_reported(**{**fields, **overrides})


@pytest.mark.django_db(transaction=True)
def test_one_telegram_payment_reported_at_once_many_times_credits_once():
    user = make_user()
    bill = telegram_bill(user)

    transitions = run_together(*[lambda: report(bill, "charge-1")] * 8)

    assert sum(t.credited for t in transitions) == 1
    assert not any(t.mismatch for t in transitions)
    assert reload(user).balance == Decimal("150.00") == ledger_sum(user=user)
    assert reload(bill).charge_id == "charge-1"


@pytest.mark.django_db(transaction=True)
def test_two_telegram_payments_of_one_bill_credit_it_once_and_flag_the_other():
    user = make_user()
    bill = telegram_bill(user)

    transitions = run_together(lambda: report(bill, "charge-a"), lambda: report(bill, "charge-b"))

    assert sum(t.credited for t in transitions) == 1
    assert sum(t.mismatch for t in transitions) == 1  # money taken twice: for people
    assert reload(user).balance == Decimal("150.00")
    assert LedgerEntry.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_charge_ids_that_differ_only_in_case_are_two_payments():
    # Stars charge ids mix cases: the database compares them as written (MySQL's binary
    # collation), so the second bill's payment is not taken for the first one's.
    user = make_user()
    first, second = telegram_bill(user), telegram_bill(user)
    assert report(first, "stxAbC-1").credited
    assert report(second, "stxabc-1").credited
    assert reload(user).balance == Decimal("300.00") == ledger_sum(user=user)
    assert Bill.objects.filter(charge_id="stxabc-1").get().pk == second.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides",
    [{"total": 99}, {"currency": "RUB"}, {"telegram_id": 1}, {"bill_id": "no-such-bill"}],
)
def test_a_reported_payment_that_matches_no_bill_is_not_credited(overrides):
    user = make_user()
    bill = telegram_bill(user)
    transition = report(bill, "charge-x", **overrides)
    assert transition.mismatch and not transition.credited
    assert reload(user).balance == 0
    assert reload(bill).status == Bill.Status.WAITING and reload(bill).charge_id == ""


@pytest.mark.django_db(transaction=True)
def test_refunds_begun_at_once_take_the_money_back_once():
    user = make_user()
    bill = telegram_bill(user, "40.00", 40)
    report(bill, "charge-r")

    bills = run_together(*[lambda: services.bill_refund_begin(bill_id=bill.pk)] * 4)

    assert {b.status for b in bills} == {Bill.Status.REFUNDING}
    assert reload(user).balance == 0 == ledger_sum(user=user)
    assert LedgerEntry.objects.filter(bill=bill, kind="refund").count() == 1
    services.bill_refund_cancel(bill_id=bill.pk, error="CHARGE_ID_INVALID")
    assert reload(user).balance == Decimal("40.00") == ledger_sum(user=user)
    assert reload(bill).status == Bill.Status.PAID
    with pytest.raises(BalanceError):  # a refund Telegram refused is not tried twice
        services.bill_refund_begin(bill_id=bill.pk)
    assert reload(user).balance == Decimal("40.00")
