from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from backend.broadcasts.models import Broadcast, Delivery
from backend.common.db import db_async
from backend.users.models import TelegramUser


def broadcast_audience(*, only_positive_balance: bool = False) -> QuerySet[TelegramUser]:
    """Who a broadcast goes to: users not blocked here who have not blocked the bot."""
    users = TelegramUser.objects.filter(is_blocked=False, bot_blocked_at__isnull=True)
    return users.filter(balance__gt=0) if only_positive_balance else users


def broadcasts_with_pending(*, queryset: QuerySet[Broadcast]) -> QuerySet[Broadcast]:
    """Each broadcast with `pending`: its deliveries not yet handled (one query for a
    list, not one a row)."""
    return queryset.annotate(
        pending=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.PENDING))
    )


def broadcast_get(*, broadcast_id: int) -> Broadcast:
    return Broadcast.objects.get(pk=broadcast_id)


@dataclass(frozen=True)
class Progress:
    broadcast: Broadcast
    counts: Counter[str]  # delivery status → how many
    rate: float | None  # messages a second since it started, while it runs
    eta: datetime | None  # when it should end at that rate

    @property
    def handled(self) -> int:
        return self.broadcast.total - self.counts[Delivery.Status.PENDING]


def broadcast_progress(*, broadcast_id: int) -> Progress:
    broadcast = Broadcast.objects.get(pk=broadcast_id)
    rows = Delivery.objects.filter(broadcast=broadcast).values_list("status")
    counts = Counter(dict(rows.annotate(n=Count("pk")).values_list("status", "n")))
    rate = eta = None
    if broadcast.status == Broadcast.Status.RUNNING and broadcast.started_at is not None:
        elapsed = (timezone.now() - broadcast.started_at).total_seconds()
        done = broadcast.total - counts[Delivery.Status.PENDING]
        if elapsed > 0 and done:
            rate = done / elapsed
            eta = timezone.now() + timedelta(seconds=counts[Delivery.Status.PENDING] / rate)
    return Progress(broadcast=broadcast, counts=counts, rate=rate, eta=eta)


abroadcast_get = db_async(broadcast_get, jobs=True)
