"""What the two queues of messages to users share: the notices about a balance
(payments.UserNotice) and the broadcasts' deliveries (broadcasts.Delivery). Each row
is one message sent at most once, by the bot process that holds the instance lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from django.db import models
from django.utils.translation import gettext_lazy as _
from loguru import logger


class OutboxStatus(models.TextChoices):
    """SENDING is written before the message goes out; a row found SENDING when a sender
    starts was in hand at a crash: UNKNOWN, never sent again."""

    PENDING = "pending", _("queued")
    SENDING = "sending", _("being sent")
    SENT = "sent", _("sent")
    FAILED = "failed", _("not delivered")
    BOT_BLOCKED = "bot_blocked", _("the user has blocked the bot")
    LEFT = "left", _("the user has deleted their account")
    SKIPPED = "skipped", _("not sent: the user is blocked")
    UNKNOWN = "unknown", _("unknown: the bot stopped while sending")


async def mark_interrupted(
    mark: Callable[[], Awaitable[int]], *, what: str, interval: float
) -> None:
    """A sender's first step: its rows left SENDING by a process that died are UNKNOWN
    (`mark` does it and says how many); retried while the database does not answer."""
    while True:
        try:
            interrupted = await mark()
            break
        except Exception:
            logger.exception("{}: the database did not answer; retrying in {} s", what, interval)
            await asyncio.sleep(interval)
    if interrupted:
        logger.warning(
            "{}: {} messages were being sent when the bot stopped: marked unknown, "
            "not sent again",
            what, interrupted,
        )  # fmt: skip
