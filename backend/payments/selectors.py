from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from backend.payments.models import Bill, LedgerEntry
from backend.users.models import TelegramUser


def bills_to_check(*, late_since: datetime, provider: str = "qiwi") -> list[Bill]:
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


def ledger_sum(*, user: TelegramUser) -> Decimal:
    total = LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0.00")
