"""The one module that writes bills, the ledger and balances.

Every function here is synchronous, and each change it makes is whole or nothing: a
function that writes more than one row runs in one `transaction.atomic` (`bills_expire`:
one per bill), the others are a single conditional UPDATE. Async code calls their
twins at the end of this module (`abill_create`, …: `backend.common.db.db_async`).
A bill is credited at most once: the transition out
of an open status is a conditional UPDATE (only one caller can win it), and the
ledger's unique constraint refuses a second top-up row for the same bill anyway.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connections, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from loguru import logger

from backend.common.db import db_async
from backend.common.money import CENT, MAX_AMOUNT, money_format, money_value
from backend.payments.models import Bill, LedgerEntry, UserNotice
from backend.payments.providers.base import Quote
from backend.payments.vocabulary import STARS_CURRENCY, BillStatus, ProviderName
from backend.users.models import TelegramUser

# What a provider may report of a bill, besides WAITING.
PROVIDER_FINAL = (BillStatus.PAID, BillStatus.REJECTED, BillStatus.EXPIRED)


class BalanceError(ValueError):
    """A balance change that is not allowed; the message is for a person."""


@dataclass(frozen=True)
class BillTransition:
    """What `bill_apply_status` did to a bill."""

    bill: Bill
    changed: bool  # the status moved in this call
    credited: bool = False  # this call credited the bill (true for exactly one call)
    balance: Decimal | None = None  # the balance after the credit
    unknown_status: str | None = None  # the provider said something we do not know
    mismatch: bool = False  # PAID, but not the amount or currency we billed


def _money(amount: Decimal) -> Decimal:
    """The amount with two places; checked before the database is asked."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise BalanceError(_("the amount must be a finite Decimal"))
    if abs(amount) > MAX_AMOUNT:
        raise BalanceError(
            _("the amount cannot exceed %(max)s") % {"max": money_format(MAX_AMOUNT)}
        )
    if amount != amount.quantize(CENT):
        raise BalanceError(_("the amount cannot have more than two decimal places"))
    return amount.quantize(CENT)


def _balance_change(
    *,
    user_id: int,
    amount: Decimal,
    kind: str,
    bill: Bill | None = None,
    admin: AbstractBaseUser | None = None,
    reason: str = "",
    expected_balance: Decimal | None = None,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """Move a balance by `amount` and write its ledger row. Runs inside the caller's atomic.

    One conditional UPDATE in kopecks (exact on every database): the balance stays within
    0…MAX_AMOUNT, and with `expected_balance` it must still be that.
    """
    rows = TelegramUser.objects.filter(pk=user_id)
    if amount < 0:
        rows = rows.filter(balance__gte=-amount)
    else:
        rows = rows.filter(balance__lte=MAX_AMOUNT - amount)
    if expected_balance is not None:
        rows = rows.filter(balance=expected_balance)
    if rows.update(balance=F("balance") + money_value(amount)) != 1:
        current = TelegramUser.objects.filter(pk=user_id).values_list("balance", flat=True).first()
        if current is None:
            raise TelegramUser.DoesNotExist(f"no user with id {user_id}")
        if expected_balance is not None and current != expected_balance:
            raise BalanceError(
                _(
                    "the balance has changed: it was %(seen)s, now it is %(now)s; "
                    "check and try again"
                )
                % {"seen": money_format(expected_balance), "now": money_format(current)}
            )
        if amount > 0:
            raise BalanceError(
                _("the balance cannot exceed %(max)s") % {"max": money_format(MAX_AMOUNT)}
            )
        raise BalanceError(_("the balance cannot go below zero"))
    balance_after = TelegramUser.objects.values_list("balance", flat=True).get(pk=user_id)
    return LedgerEntry.objects.create(
        user_id=user_id,
        amount=amount,
        balance_after=balance_after,
        kind=kind,
        bill=bill,
        admin=admin,
        reason=reason,
        idempotency_key=idempotency_key,
    )


class TooManyOpenBills(Exception):
    def __init__(self, open_bills: int) -> None:
        super().__init__(f"{open_bills} open bills")
        self.open_bills = open_bills


@transaction.atomic
def bill_create(
    *,
    user: TelegramUser,
    amount: Decimal,
    lifetime: timedelta,
    currency: str = "RUB",
    max_open: int | None = None,
    provider: ProviderName = ProviderName.QIWI,
) -> Bill:
    """Write a NEW bill before the provider hears of it.

    With `max_open`, refuse (TooManyOpenBills) when the user already has that many open
    bills; the user's row is locked meanwhile, so parallel requests cannot pass together.
    """
    amount = _money(amount)
    if amount <= 0:
        raise BalanceError(_("the bill amount must be above zero"))
    if max_open is not None:
        TelegramUser.objects.select_for_update().filter(pk=user.pk).exists()
        open_bills = Bill.objects.filter(user=user, status__in=Bill.OPEN_STATUSES).count()
        if open_bills >= max_open:
            raise TooManyOpenBills(open_bills)
    now = timezone.now()
    return Bill.objects.create(
        id=uuid.uuid4().hex,
        user=user,
        provider=provider,
        amount=amount,
        currency=currency,
        created_at=now,
        status_changed_at=now,
        expires_at=now + lifetime,
    )


def bill_mark_created(
    *,
    bill_id: str,
    pay_url: str,
    provider_status: str,
    quote: Quote | None = None,
    charge_id: str = "",
) -> Bill:
    """The provider accepted the bill: store its pay link, what it asks the user to pay
    and its id of the payment (YooKassa's; unique per provider); NEW becomes WAITING."""
    fields: dict[str, object] = {}
    if quote is not None:
        fields = {"invoice_currency": quote.currency, "invoice_total": quote.total}
    if charge_id:
        fields["charge_id"] = charge_id[:255]
    Bill.objects.filter(pk=bill_id, status=Bill.Status.NEW).update(
        status=Bill.Status.WAITING,
        pay_url=pay_url,
        provider_status=provider_status,
        status_changed_at=timezone.now(),
        **fields,
    )
    return Bill.objects.get(pk=bill_id)


def bill_set_message(*, bill_id: str, message_id: int) -> Bill:
    """The bot's message that carries the bill's pay link; returns the bill as it is now
    (it may have closed meanwhile)."""
    Bill.objects.filter(pk=bill_id).update(message_id=message_id)
    return Bill.objects.select_related("user").get(pk=bill_id)


def bill_mark_failed(*, bill_id: str, error: str) -> None:
    """Creating the bill at the provider failed; it can never be paid."""
    Bill.objects.filter(pk=bill_id, status=Bill.Status.NEW).update(
        status=Bill.Status.FAILED, error=error[:2000], status_changed_at=timezone.now()
    )


@transaction.atomic
def bill_apply_status(
    *,
    bill_id: str,
    status: BillStatus | None,
    provider_status: str,
    amount: Decimal | None = None,
    currency: str | None = None,
    pay_url: str = "",
    expired_locally: bool = False,
    admin: AbstractBaseUser | None = None,
    reason: str = "",
) -> BillTransition:
    """Apply what the provider reported; credit the balance on PAID.

    `status` is the provider's answer in the shared vocabulary (WAITING, PAID, REJECTED,
    EXPIRED; None for a word its adapter does not know), `provider_status` its own word,
    stored as it is. `expired_locally` is set when we rejected a bill past its lifetime:
    a REJECTED answer then means the bill expired, and it is stored as EXPIRED. `admin`
    and `reason`: who asked for this credit and why (the reconciliation's «Зачислить»),
    written into its ledger row.
    """
    if status is not None and status != BillStatus.WAITING and status not in PROVIDER_FINAL:
        raise ValueError(f"a provider does not report {status}")
    bill = Bill.objects.select_related("user").get(pk=bill_id)
    late_payment = status == BillStatus.PAID and bill.status in Bill.LATE_PAYABLE
    if not bill.is_open and not late_payment:
        return BillTransition(bill=bill, changed=False)

    stored_word = provider_status[:32]
    if status == BillStatus.WAITING:
        if bill.status == Bill.Status.NEW:
            return _bill_move(bill, Bill.Status.WAITING, stored_word, pay_url=pay_url)
        if bill.provider_status != stored_word:
            Bill.objects.filter(pk=bill.pk).update(provider_status=stored_word)
            bill.provider_status = stored_word
        return BillTransition(bill=bill, changed=False)

    if status is None:
        if bill.provider_status != stored_word:
            Bill.objects.filter(pk=bill.pk).update(provider_status=stored_word)
            bill.provider_status = stored_word
        return BillTransition(bill=bill, changed=False, unknown_status=provider_status)

    if status == BillStatus.PAID and (amount != bill.amount or currency != bill.currency):
        logger.error(
            "bill {} reported PAID with {} {}, but was issued for {} {}: not credited",
            bill.pk, amount, currency, bill.amount, bill.currency,
        )  # fmt: skip
        Bill.objects.filter(pk=bill.pk).update(error=f"PAID with {amount} {currency}")
        return BillTransition(bill=bill, changed=False, mismatch=True)
    if status == BillStatus.REJECTED and expired_locally:
        status = BillStatus.EXPIRED
    return _bill_move(bill, status, stored_word, admin=admin, reason=reason)


def _bill_move(
    bill: Bill,
    new_status: str,
    provider_status: str,
    pay_url: str = "",
    *,
    admin: AbstractBaseUser | None = None,
    reason: str = "",
) -> BillTransition:
    now = timezone.now()
    fields = {"status": new_status, "provider_status": provider_status, "status_changed_at": now}
    if pay_url and not bill.pay_url:
        fields["pay_url"] = pay_url
    if new_status == Bill.Status.PAID:
        fields["credited_at"] = now
    # Only one caller can move a bill out of its status: the others update 0 rows.
    movable = Bill.OPEN_STATUSES
    if new_status == Bill.Status.PAID:
        movable += Bill.LATE_PAYABLE  # money that came late is still money
    won = Bill.objects.filter(pk=bill.pk, status__in=movable).update(**fields)
    if not won:
        bill.refresh_from_db()
        return BillTransition(bill=bill, changed=False)
    balance = None
    if new_status == Bill.Status.PAID:
        entry = _balance_change(
            user_id=bill.user_id,
            amount=bill.amount,
            kind=LedgerEntry.Kind.TOPUP,
            bill=bill,
            admin=admin,
            reason=reason,
        )
        balance = entry.balance_after
        logger.info(
            "bill {} paid: +{} to user {}, balance {}",
            bill.pk, bill.amount, bill.user.telegram_id, balance,
        )  # fmt: skip
    for name, value in fields.items():
        setattr(bill, name, value)
    return BillTransition(bill=bill, changed=True, credited=balance is not None, balance=balance)


REASON_MAX_LENGTH = 500


class AdjustmentReplayed(Exception):
    """The form with this key has been applied already (`entry`); nothing changed now."""

    def __init__(self, entry: LedgerEntry) -> None:
        super().__init__(f"adjustment {entry.idempotency_key} was applied as ledger row {entry.pk}")
        self.entry = entry


def balance_adjust(
    *,
    user: TelegramUser,
    amount: Decimal,
    reason: str,
    admin: AbstractBaseUser | None = None,
    expected_balance: Decimal | None = None,
    idempotency_key: str | None = None,
    notify: bool = False,
    show_reason: bool = False,
) -> LedgerEntry:
    """An admin's correction of a balance: a signed amount and a reason, never below zero
    and never above MAX_AMOUNT. With `notify` the user is told (a UserNotice written with
    the change; the reason only with `show_reason`).

    With `expected_balance` (the balance the admin saw) the change is refused if the
    balance is different by now. With `idempotency_key` (the admin form's) the change is
    made once: the same key again raises AdjustmentReplayed, also when the two race (the
    ledger's unique key decides, and the loser's transaction is rolled back whole).
    """
    try:
        return _balance_adjust(
            user=user,
            amount=amount,
            reason=reason,
            admin=admin,
            expected_balance=expected_balance,
            idempotency_key=idempotency_key,
            notify=notify,
            show_reason=show_reason,
        )
    except (IntegrityError, BalanceError):
        applied = _adjustment_applied(idempotency_key)
        if applied is None:
            raise
        raise AdjustmentReplayed(applied) from None


def _adjustment_applied(idempotency_key: str | None) -> LedgerEntry | None:
    if not idempotency_key:
        return None
    return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()


@transaction.atomic
def _balance_adjust(
    *,
    user: TelegramUser,
    amount: Decimal,
    reason: str,
    admin: AbstractBaseUser | None,
    expected_balance: Decimal | None,
    idempotency_key: str | None,
    notify: bool,
    show_reason: bool,
) -> LedgerEntry:
    if (applied := _adjustment_applied(idempotency_key)) is not None:
        raise AdjustmentReplayed(applied)
    amount = _money(amount)
    if amount == 0:
        raise BalanceError(_("the adjustment cannot be zero"))
    reason = reason.strip()
    if not reason:
        raise BalanceError(_("give a reason for the adjustment"))
    if len(reason) > REASON_MAX_LENGTH:
        raise BalanceError(
            _("the reason cannot be longer than %(max)s characters") % {"max": REASON_MAX_LENGTH}
        )
    entry = _balance_change(
        user_id=user.pk,
        amount=amount,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        admin=admin,
        reason=reason,
        expected_balance=expected_balance,
        idempotency_key=idempotency_key or None,
    )
    if notify:
        UserNotice.objects.create(entry=entry, show_reason=show_reason)
    logger.info(
        "balance of user {} adjusted by {} ({}): {} by {}",
        user.telegram_id, amount, reason, entry.balance_after,
        admin.get_username() if admin else "the system",
    )  # fmt: skip
    return entry


# --- payments the provider reports itself (Telegram) -----------------------------------


def _bills_locked() -> QuerySet[Bill]:
    """Bills with their users, selected FOR UPDATE of the bill's row only where the
    database can say so; MariaDB locks the user's row too, which the credit that may
    follow locks anyway, after the bill's, as every credit does."""
    of = ("self",) if connections[Bill.objects.db].features.has_select_for_update_of else ()
    return Bill.objects.select_related("user").select_for_update(of=of)


@transaction.atomic
def bill_pay_reported(
    *,
    bill_id: str,
    telegram_id: int,
    currency: str,
    total: int,
    charge_id: str,
    provider_charge_id: str = "",
    admin: AbstractBaseUser | None = None,
    reason: str = "",
) -> BillTransition:
    """A provider reports a payment of a bill (Telegram's successful_payment): credit it
    once. The same charge reported again changes nothing; a payment that does not match
    the bill (someone else's, another sum) is stored nowhere and reported as a mismatch,
    for people to look at: the money has been taken. `admin` and `reason` as in
    `bill_apply_status`."""
    bill_id = bill_id[:64]  # Telegram's payload: whatever a client sent
    bill = _bills_locked().filter(pk=bill_id).first()
    if bill is not None and bill.charge_id == charge_id:
        return BillTransition(bill=bill, changed=False)  # this payment, once more
    if bill is None or not _payment_matches(bill, telegram_id, currency, total):
        logger.error(
            "payment {} of {} {} by {} for bill {!r} matches no bill of ours: not credited",
            charge_id, total, currency, telegram_id, bill_id,
        )  # fmt: skip
        return BillTransition(bill=bill or Bill(pk=bill_id), changed=False, mismatch=True)
    if bill.charge_id or not (bill.is_open or bill.status in Bill.LATE_PAYABLE):
        logger.error(
            "bill {} is {} (charge {!r}), and a second payment {} came for it: not credited",
            bill.pk, bill.status, bill.charge_id, charge_id,
        )  # fmt: skip
        return BillTransition(bill=bill, changed=False, mismatch=True)
    Bill.objects.filter(pk=bill.pk).update(
        charge_id=charge_id, provider_charge_id=provider_charge_id[:255]
    )
    bill.charge_id, bill.provider_charge_id = charge_id, provider_charge_id[:255]
    return _bill_move(bill, Bill.Status.PAID, "PAID", admin=admin, reason=reason)


def _payment_matches(bill: Bill, telegram_id: int, currency: str, total: int) -> bool:
    return (
        bill.user.telegram_id == telegram_id
        and bill.invoice_currency == currency
        and bill.invoice_total == total
    )


def bills_expire(*, provider: ProviderName) -> list[BillTransition]:
    """Open bills of a provider that is never asked about them (Telegram) expire by their
    own clock, each in a transaction of its own; a payment that still comes is credited
    (see bill_pay_reported). Returns the bills that expired in this call."""
    expired = Bill.objects.filter(
        provider=provider, status__in=Bill.OPEN_STATUSES, expires_at__lte=timezone.now()
    ).values_list("pk", flat=True)
    transitions = [bill_expire(bill_id=bill_id) for bill_id in expired]
    return [t for t in transitions if t.changed]


@transaction.atomic
def bill_expire(*, bill_id: str, provider_status: str = "EXPIRED") -> BillTransition:
    """One open bill past its lifetime expires; any other is left as it is.
    `provider_status`: the provider's last word, when it has one (YooKassa's `pending`
    for a payment it cannot cancel)."""
    bill = Bill.objects.select_related("user").get(pk=bill_id)
    if not bill.is_open or bill.expires_at > timezone.now():
        return BillTransition(bill=bill, changed=False)
    return _bill_move(bill, Bill.Status.EXPIRED, provider_status[:32])


# --- refunds (Telegram Stars) -------------------------------------------------------------


@transaction.atomic
def bill_refund_begin(*, bill_id: str, admin: AbstractBaseUser | None = None) -> Bill:
    """First half of a refund: the balance goes down by the bill's amount (a refund row
    in the ledger; refused below zero) and the bill is REFUNDING, before the provider is
    asked. A bill already REFUNDING (an earlier attempt had no clear answer) is returned
    as it is, to be asked again."""
    bill = _bills_locked().get(pk=bill_id)
    if bill.status == Bill.Status.REFUNDING:
        return bill
    if (
        bill.status != Bill.Status.PAID
        or bill.invoice_currency != STARS_CURRENCY
        or not bill.charge_id
    ):
        raise BalanceError(_("only a paid bill in Telegram Stars can be refunded"))
    if LedgerEntry.objects.filter(bill=bill, kind=LedgerEntry.Kind.REFUND).exists():
        raise BalanceError(_("Telegram has refused this bill's refund once already"))
    _balance_change(
        user_id=bill.user_id,
        amount=-bill.amount,
        kind=LedgerEntry.Kind.REFUND,
        bill=bill,
        admin=admin,
        reason=_("refund of bill %(bill)s") % {"bill": bill.pk},
    )
    Bill.objects.filter(pk=bill.pk).update(
        status=Bill.Status.REFUNDING, status_changed_at=timezone.now()
    )
    bill.status = Bill.Status.REFUNDING
    return bill


@transaction.atomic
def bill_refund_finish(*, bill_id: str) -> Bill:
    """The provider has given the money back; the user is told (a UserNotice of the
    refund row, written with the status)."""
    moved = Bill.objects.filter(pk=bill_id, status=Bill.Status.REFUNDING).update(
        status=Bill.Status.REFUNDED, status_changed_at=timezone.now()
    )
    if moved:
        entry = LedgerEntry.objects.get(bill_id=bill_id, kind=LedgerEntry.Kind.REFUND)
        UserNotice.objects.create(entry=entry)
    return Bill.objects.select_related("user").get(pk=bill_id)


# --- notices to users (sent by backend/bot/notices.py) ------------------------------------


def notices_interrupted() -> int:
    """Notices a sender had begun to send when it stopped: UNKNOWN, never sent again (the
    message may have gone out). Called when a sender starts; returns how many."""
    return UserNotice.objects.filter(status=UserNotice.Status.SENDING).update(
        status=UserNotice.Status.UNKNOWN, error=_("the bot stopped while sending it")
    )


def notice_claim(*, notice_id: int) -> bool:
    """PENDING → SENDING, before the message goes out; False if it was not PENDING."""
    rows = UserNotice.objects.filter(pk=notice_id, status=UserNotice.Status.PENDING)
    return rows.update(status=UserNotice.Status.SENDING) == 1


def notice_finish(*, notice_id: int, status: UserNotice.Status, error: str = "") -> None:
    """What became of a notice being sent."""
    UserNotice.objects.filter(pk=notice_id, status=UserNotice.Status.SENDING).update(
        status=status,
        error=error[:2000],
        sent_at=timezone.now() if status == UserNotice.Status.SENT else None,
    )


@transaction.atomic
def bill_refund_cancel(*, bill_id: str, error: str, admin: AbstractBaseUser | None = None) -> Bill:
    """The provider refused the refund: the bill is PAID again and the balance gets its
    amount back (an adjustment row beside the refund row: the ledger is never edited)."""
    bill = _bills_locked().get(pk=bill_id)
    if bill.status != Bill.Status.REFUNDING:
        return bill
    _balance_change(
        user_id=bill.user_id,
        amount=bill.amount,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        bill=bill,
        admin=admin,
        reason=_("refund of bill %(bill)s refused: %(error)s") % {"bill": bill.pk, "error": error},
    )
    Bill.objects.filter(pk=bill.pk).update(
        status=Bill.Status.PAID, error=error[:2000], status_changed_at=timezone.now()
    )
    bill.status, bill.error = Bill.Status.PAID, error[:2000]
    return bill


# --- for async code (the bot, the bill jobs) ----------------------------------------------

abill_create = db_async(bill_create)
abill_mark_created = db_async(bill_mark_created)
abill_mark_failed = db_async(bill_mark_failed)
abill_set_message = db_async(bill_set_message)
abill_apply_status = db_async(bill_apply_status)
abill_pay_reported = db_async(bill_pay_reported)
abills_expire = db_async(bills_expire)
abill_expire = db_async(bill_expire)
abill_refund_begin = db_async(bill_refund_begin)
abill_refund_finish = db_async(bill_refund_finish)
abill_refund_cancel = db_async(bill_refund_cancel)
anotices_interrupted = db_async(notices_interrupted)
anotice_claim = db_async(notice_claim)
anotice_finish = db_async(notice_finish)
