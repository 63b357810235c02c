from decimal import Decimal

from django.db.models import Sum

from backend.payments.models import Bill, LedgerEntry
from backend.users.models import TelegramUser


def bills_open() -> list[Bill]:
    """Bills that still may be paid: the poller checks each of them."""
    return list(
        Bill.objects.filter(status__in=Bill.OPEN_STATUSES)
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
