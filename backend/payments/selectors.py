from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum

from backend.payments.models import Bill, LedgerEntry
from backend.users.models import TelegramUser


def bills_to_check(*, late_since: datetime) -> list[Bill]:
    """What the poller asks about: the open bills, and the bills closed since
    `late_since` that a late payment could still land on."""
    return list(
        Bill.objects.filter(
            Q(status__in=Bill.OPEN_STATUSES)
            | Q(status__in=Bill.LATE_PAYABLE, status_changed_at__gte=late_since)
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


def ledger_sum(*, user: TelegramUser) -> Decimal:
    total = LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0.00")
