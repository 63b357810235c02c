from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from backend.common.outbox import OutboxStatus
from backend.users.models import TelegramUser


class Broadcast(models.Model):
    """A message to many users: a text (Telegram HTML), an optional URL button, and the
    users it goes to, fixed when it is queued (a `Delivery` row each)."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("sending")
        PAUSED = "paused", _("paused")
        CANCELLED = "cancelled", _("cancelled")
        DONE = "done", _("done")

    # Being sent or waiting its turn: the sender takes these, oldest first.
    ACTIVE = (Status.QUEUED, Status.RUNNING)

    text = models.TextField(_("text"))
    button_text = models.CharField(_("button text"), max_length=64, blank=True)
    button_url = models.URLField(_("button URL"), max_length=2048, blank=True)
    only_positive_balance = models.BooleanField(_("only users with money"), default=False)
    # Made for users chosen in the users list («Разослать выбранным»): its deliveries
    # are written with it, and queuing it adds nobody.
    chosen = models.BooleanField(_("chosen users"), default=False)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    total = models.PositiveIntegerField(_("recipients"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("admin"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("broadcast")
        verbose_name_plural = _("broadcasts")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk}: {self.text[:40]}"


class Delivery(models.Model):
    """One recipient of a broadcast: at most one message (unique per broadcast and user).
    SENDING is written before the message goes out; one found SENDING after a crash is
    UNKNOWN and never sent again."""

    Status = OutboxStatus

    broadcast = models.ForeignKey(
        Broadcast, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("broadcast")
    )
    user = models.ForeignKey(
        TelegramUser, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "user"], name="one_delivery_per_user")
        ]
        indexes = [
            models.Index(fields=["broadcast", "status", "id"], name="delivery_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.broadcast_id} → {self.user_id}: {self.status}"
