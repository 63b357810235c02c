from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from backend.common.db import db_async
from backend.payments.models import Bill, LedgerEntry, UserNotice
from backend.payments.vocabulary import ProviderName
from backend.users.models import TelegramUser


def bills_to_check(*, late_since: datetime, provider: ProviderName) -> list[Bill]:
    """What the poller asks `provider` about: its open bills, and its bills closed since
    `late_since` that a late payment could still land on."""
    return list(
        Bill.objects.filter(
            Q(status__in=Bill.OPEN_STATUSES)
            | Q(status__in=Bill.LATE_PAYABLE, status_changed_at__gte=late_since),
            provider=provider,
        )
        .select_related("user")
        .order_by("created_at")
    )


def bill_get_for_user(*, bill_id: str, telegram_id: int) -> Bill | None:
    """The bill, only if it belongs to that Telegram user."""
    return (
        Bill.objects.select_related("user")
        .filter(pk=bill_id, user__telegram_id=telegram_id)
        .first()
    )


def bill_by_charge_id(*, provider: ProviderName, charge_id: str) -> Bill | None:
    """The bill of `provider` that records the provider's payment id `charge_id`."""
    if not charge_id:
        return None
    return (
        Bill.objects.select_related("user").filter(provider=provider, charge_id=charge_id).first()
    )


def bill_payable_error(*, bill_id: str, telegram_id: int, currency: str, total: int) -> str | None:
    """Why a payment the user is about to make (Telegram's pre-checkout) must be refused,
    or None: the bill must exist, be that user's, be open and unexpired, and ask exactly
    this sum in this currency."""
    bill = Bill.objects.select_related("user").filter(pk=bill_id[:64]).first()
    if bill is None:
        return "not_found"
    if bill.user.telegram_id != telegram_id:
        return "not_yours"
    if bill.status != Bill.Status.WAITING:
        return "expired" if bill.status == Bill.Status.EXPIRED else "closed"
    if bill.expires_at <= timezone.now():
        return "expired"
    if (bill.invoice_currency, bill.invoice_total) != (currency, total):
        return "mismatch"
    return None


# Ids per IN (...) query: far below every database's limit on query parameters.
_IDS_PER_QUERY = 500


def _chunks(values: Iterable[str]) -> list[list[str]]:
    unique = sorted(set(values))
    return [unique[i : i + _IDS_PER_QUERY] for i in range(0, len(unique), _IDS_PER_QUERY)]


def charge_ids_known(*, provider: ProviderName, charge_ids: Iterable[str]) -> set[str]:
    """Which of `charge_ids` a bill of `provider` already records (paid, being refunded
    or refunded by that payment)."""
    known: set[str] = set()
    for chunk in _chunks(c for c in charge_ids if c):
        rows = Bill.objects.filter(provider=provider, charge_id__in=chunk)
        known.update(rows.values_list("charge_id", flat=True))
    return known


def bill_ids_invoiced(
    *, provider: ProviderName, currency: str, bill_ids: Iterable[str]
) -> set[str]:
    """Which of `bill_ids` are bills of `provider` invoiced in `currency` (Telegram
    Stars: XTR); ids longer than a bill id are none of ours."""
    found: set[str] = set()
    for chunk in _chunks(b for b in bill_ids if 0 < len(b) <= 64):
        rows = Bill.objects.filter(pk__in=chunk, provider=provider, invoice_currency=currency)
        found.update(rows.values_list("pk", flat=True))
    return found


def unpaid_invoices_since(
    *, provider: ProviderName, currency: str, since: datetime
) -> datetime | None:
    """When the oldest bill of `provider` invoiced in `currency` since `since` that a
    payment could still land on (open, expired or rejected, no charge recorded) was
    created; None when there is none."""
    rows = Bill.objects.filter(
        provider=provider,
        invoice_currency=currency,
        charge_id="",
        status__in=Bill.OPEN_STATUSES + Bill.LATE_PAYABLE,
        created_at__gte=since,
    )
    return rows.order_by("created_at").values_list("created_at", flat=True).first()


@dataclass(frozen=True)
class Statement:
    """A user's balance and their last changes, newest first, as one moment saw them."""

    balance: Decimal
    entries: list[LedgerEntry]


def user_statement(*, user: TelegramUser, limit: int = 5) -> Statement:
    """The balance is the newest row's `balance_after`, read in the same query as the
    rows: a credit committed meanwhile cannot make the two disagree."""
    entries = list(LedgerEntry.objects.filter(user=user).order_by("-id")[:limit])
    balance = entries[0].balance_after if entries else user.balance
    return Statement(balance=balance, entries=entries)


def notices_pending(*, limit: int = 100) -> list[UserNotice]:
    """The oldest notices still to send, with their change and user."""
    rows = UserNotice.objects.filter(status=UserNotice.Status.PENDING)
    return list(rows.select_related("entry__user").order_by("id")[:limit])


# --- the owner's reconciliation (backend.payments.reconciliation) ----------------------

# A bill in one of these has been credited (a refund came after its credit).
CREDITED_STATUSES = (Bill.Status.PAID, Bill.Status.REFUNDING, Bill.Status.REFUNDED)


def bills_credited_between(
    *, provider: ProviderName, since: datetime, until: datetime
) -> list[Bill]:
    """Bills of `provider` created at `since` or later and before `until` that were
    credited by their status, or that have a top-up row in the ledger whatever their
    status says."""
    topped_up = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOPUP).values("bill_id")
    return list(
        Bill.objects.filter(provider=provider, created_at__gte=since, created_at__lt=until)
        .filter(Q(status__in=CREDITED_STATUSES) | Q(pk__in=topped_up))
        .select_related("user")
        .order_by("created_at")
    )


def bills_by_ids(*, provider: ProviderName, bill_ids: Iterable[str]) -> dict[str, Bill]:
    """The bills of `provider` among `bill_ids`, by id; ids longer than a bill id are
    none of ours."""
    found: dict[str, Bill] = {}
    for chunk in _chunks(b for b in bill_ids if 0 < len(b) <= 64):
        rows = Bill.objects.filter(pk__in=chunk, provider=provider).select_related("user")
        found.update((bill.pk, bill) for bill in rows)
    return found


def ledger_topups(*, bill_ids: Iterable[str]) -> dict[str, list[Decimal]]:
    """The amounts of the top-up rows of each of these bills (none: not in the dict)."""
    topups: dict[str, list[Decimal]] = {}
    for chunk in _chunks(bill_ids):
        rows = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOPUP, bill_id__in=chunk)
        for bill_id, amount in rows.order_by("pk").values_list("bill_id", "amount"):
            topups.setdefault(bill_id, []).append(amount)
    return topups


def providers_billed_between(*, since: datetime, until: datetime) -> set[str]:
    """The providers that have bills created in the period."""
    rows = Bill.objects.filter(created_at__gte=since, created_at__lt=until)
    return set(rows.values_list("provider", flat=True).distinct())


def ledger_sum(*, user: TelegramUser) -> Decimal:
    total = LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0.00")


# For async code (the bot, the bill jobs): see backend.common.db.
abills_to_check = db_async(bills_to_check)
abill_get_for_user = db_async(bill_get_for_user)
abill_payable_error = db_async(bill_payable_error)
auser_statement = db_async(user_statement)
anotices_pending = db_async(notices_pending)
abill_by_charge_id = db_async(bill_by_charge_id, idempotent=True)
