"""The one module that writes broadcasts and their deliveries.

A broadcast is written as a DRAFT, then queued: its recipients are fixed at that moment,
one Delivery row each (unique per broadcast and user), and the bot process that holds
the instance lock sends them (backend/bot/broadcasts.py), at most one message each: a
delivery is SENDING before its message goes out, and one found SENDING after a crash is
UNKNOWN, never sent again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from backend.broadcasts import selectors
from backend.broadcasts.models import Broadcast, Delivery
from backend.broadcasts.telegram_html import TelegramHtmlError, telegram_html_text
from backend.common.db import db_async
from backend.users.models import TelegramUser

BUTTON_TEXT_MAX = 64
QUEUE_BATCH = 2000  # delivery rows written at once when a broadcast is queued

Status = Broadcast.Status


class BroadcastError(ValueError):
    """A broadcast that cannot be made or moved so; the message is for a person."""


def broadcast_check(*, text: str, button_text: str = "", button_url: str = "") -> None:
    """Raises BroadcastError if Telegram would refuse the text or the button."""
    try:
        telegram_html_text(text)
    except TelegramHtmlError as e:
        raise BroadcastError(_("Telegram would refuse the text: %(why)s") % {"why": e}) from None
    button_text, button_url = button_text.strip(), button_url.strip()
    if bool(button_text) != bool(button_url):
        raise BroadcastError(_("A button needs both its text and its URL."))
    if len(button_text) > BUTTON_TEXT_MAX:
        raise BroadcastError(
            _("The button's text is longer than %(max)s characters.") % {"max": BUTTON_TEXT_MAX}
        )
    if button_url and (not button_url.startswith("https://") or len(button_url) > 2048):
        raise BroadcastError(_("The button's URL must start with https://."))


def broadcast_create(
    *,
    text: str,
    button_text: str = "",
    button_url: str = "",
    only_positive_balance: bool = False,
    admin: AbstractBaseUser | None = None,
    user_ids: Iterable[int] | None = None,
) -> Broadcast:
    """A DRAFT, refused (BroadcastError) if Telegram would refuse its text or button.

    `user_ids` (TelegramUser pks, the users list's choice): the broadcast goes to those
    of them who are not blocked and have not blocked the bot, and to nobody else; their
    deliveries are written now, in the same transaction."""
    button_text, button_url = button_text.strip(), button_url.strip()
    broadcast_check(text=text, button_text=button_text, button_url=button_url)
    with transaction.atomic():
        broadcast = Broadcast.objects.create(
            text=text,
            button_text=button_text,
            button_url=button_url,
            only_positive_balance=only_positive_balance and user_ids is None,
            chosen=user_ids is not None,
            created_by=admin,
        )
        if user_ids is not None:
            chosen = selectors.broadcast_audience().filter(pk__in=set(user_ids))
            broadcast.total = _write_deliveries(broadcast, chosen)
            broadcast.save(update_fields=["total"])
    return broadcast


def _write_deliveries(broadcast: Broadcast, users: QuerySet[TelegramUser]) -> int:
    """A PENDING delivery for each of `users`; returns how many."""
    user_ids = list(users.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(user_ids), QUEUE_BATCH):
        Delivery.objects.bulk_create(
            Delivery(broadcast=broadcast, user_id=user_id)
            for user_id in user_ids[start : start + QUEUE_BATCH]
        )
    return len(user_ids)


@transaction.atomic
def broadcast_queue(*, broadcast_id: int) -> Broadcast:
    """DRAFT → QUEUED, with a PENDING delivery for every user of its audience now (one
    made for chosen users has its deliveries already; those blocked since get nothing
    when their turn comes)."""
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast_id)
    if broadcast.status != Status.DRAFT:
        raise BroadcastError(_("Only a draft can be queued."))
    if not broadcast.chosen:
        audience = selectors.broadcast_audience(
            only_positive_balance=broadcast.only_positive_balance
        )
        broadcast.total = _write_deliveries(broadcast, audience)
    broadcast.status = Status.QUEUED
    broadcast.save(update_fields=["total", "status"])
    return broadcast


def _move(broadcast_id: int, to: Status, *, only_from: tuple[Status, ...]) -> Broadcast:
    moved = Broadcast.objects.filter(pk=broadcast_id, status__in=only_from).update(status=to)
    broadcast = Broadcast.objects.get(pk=broadcast_id)
    if not moved and broadcast.status != to:
        raise BroadcastError(
            _("A broadcast that is «%(status)s» cannot be so.")
            % {"status": broadcast.get_status_display()}
        )
    return broadcast


def broadcast_pause(*, broadcast_id: int) -> Broadcast:
    """Stops before the next window of deliveries is claimed (the one or two claimed go
    out); `broadcast_resume` goes on from the next one."""
    return _move(broadcast_id, Status.PAUSED, only_from=Broadcast.ACTIVE)


def broadcast_resume(*, broadcast_id: int) -> Broadcast:
    return _move(broadcast_id, Status.QUEUED, only_from=(Status.PAUSED,))


def broadcast_cancel(*, broadcast_id: int) -> Broadcast:
    """No more messages; those sent stay sent, the rest stay queued and are never sent."""
    return _move(
        broadcast_id, Status.CANCELLED, only_from=(Status.DRAFT, *Broadcast.ACTIVE, Status.PAUSED)
    )


# --- the sender (backend/bot/broadcasts.py) ------------------------------------------------


def broadcast_next() -> Broadcast | None:
    """The oldest broadcast to send, RUNNING from now on."""
    broadcast = Broadcast.objects.filter(status__in=Broadcast.ACTIVE).order_by("pk").first()
    if broadcast is None:
        return None
    if broadcast.status == Status.QUEUED:
        started = broadcast.started_at or timezone.now()
        moved = Broadcast.objects.filter(pk=broadcast.pk, status=Status.QUEUED).update(
            status=Status.RUNNING, started_at=started
        )
        if not moved:  # paused or cancelled meanwhile
            return None
        broadcast.status, broadcast.started_at = Status.RUNNING, started
    return broadcast


def broadcast_finish(*, broadcast_id: int) -> bool:
    """RUNNING → DONE once nothing of it is left to send; True if it moved."""
    left = Delivery.objects.filter(
        broadcast_id=broadcast_id, status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING)
    )
    if left.exists():
        return False
    rows = Broadcast.objects.filter(pk=broadcast_id, status=Status.RUNNING)
    return rows.update(status=Status.DONE, finished_at=timezone.now()) == 1


def deliveries_interrupted() -> int:
    """Deliveries a sender had begun when it stopped: UNKNOWN, never sent again (the
    message may have gone out). Called when a sender starts; returns how many."""
    return Delivery.objects.filter(status=Delivery.Status.SENDING).update(
        status=Delivery.Status.UNKNOWN, error=_("the bot stopped while sending it")
    )


class Claimed(NamedTuple):
    """A delivery claimed for sending, with what the sender needs of its user."""

    delivery_id: int
    telegram_id: int
    user_blocked: bool  # blocked in the admin
    bot_blocked: bool  # the user has blocked the bot


@transaction.atomic
def deliveries_claim(*, broadcast_id: int, limit: int) -> list[Claimed] | None:
    """The next `limit` PENDING deliveries of a RUNNING broadcast, oldest first, SENDING
    from now on (just before their messages go out); [] when none is left, None when the
    broadcast no longer runs (paused or cancelled meanwhile). The broadcast's row is
    locked for it, so a pause waits for the claim or comes before."""
    running = Broadcast.objects.select_for_update().filter(pk=broadcast_id, status=Status.RUNNING)
    if not list(running.values_list("pk", flat=True)):
        return None
    rows = Delivery.objects.filter(broadcast_id=broadcast_id, status=Delivery.Status.PENDING)
    columns = ("pk", "user__telegram_id", "user__is_blocked", "user__bot_blocked_at")
    claimed = [
        Claimed(pk, telegram_id, is_blocked, bot_blocked_at is not None)
        for pk, telegram_id, is_blocked, bot_blocked_at in rows.order_by("pk").values_list(
            *columns
        )[:limit]
    ]
    if claimed:
        Delivery.objects.filter(pk__in=[c.delivery_id for c in claimed]).update(
            status=Delivery.Status.SENDING
        )
    return claimed


def deliveries_finish(*, outcomes: list[tuple[int, Delivery.Status, str]]) -> None:
    """What became of deliveries being sent: (id, status, error) each; the many that
    were sent in one statement."""
    sent = [pk for pk, status, _error in outcomes if status == Delivery.Status.SENT]
    sending = Delivery.objects.filter(status=Delivery.Status.SENDING)
    with transaction.atomic():
        if sent:
            sending.filter(pk__in=sent).update(
                status=Delivery.Status.SENT, error="", sent_at=timezone.now()
            )
        for pk, status, error in outcomes:
            if status != Delivery.Status.SENT:
                sending.filter(pk=pk).update(status=status, error=error[:2000], sent_at=None)


abroadcast_next = db_async(broadcast_next, jobs=True)
abroadcast_finish = db_async(broadcast_finish, jobs=True)
adeliveries_interrupted = db_async(deliveries_interrupted, jobs=True)
adeliveries_claim = db_async(deliveries_claim, jobs=True)
# idempotent: it writes the rows still SENDING only
adeliveries_finish = db_async(deliveries_finish, idempotent=True, jobs=True)
