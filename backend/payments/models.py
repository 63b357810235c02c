from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from backend.common.money import MoneyField, money_format
from backend.common.outbox import OutboxStatus
from backend.payments.vocabulary import BillStatus, ProviderName
from backend.users.models import TelegramUser


class Bill(models.Model):
    """A bill at a payment provider (`provider`: a ProviderName); `id` is the billId we
    send to QIWI, the payload of a Telegram invoice, or the `Idempotence-Key` and
    `metadata.bill_id` of a YooKassa payment (whose own id is `charge_id`).

    The row is written (status NEW) before the provider is called, so a bill that
    exists at the provider always exists here too and survives restarts. `amount` and
    `currency` are what the balance gets; `invoice_total` and `invoice_currency` what
    the provider asks of the user (Telegram Stars, or a currency's smallest units).
    """

    Status = BillStatus

    OPEN_STATUSES = (Status.NEW, Status.WAITING)
    # Closed by the provider's word, yet a payment may still land on them (a payment form left
    # open in a browser): the poller asks about them for a grace period, and a PAID
    # that comes later is credited.
    LATE_PAYABLE = (Status.EXPIRED, Status.REJECTED)

    id = models.CharField(_("bill ID"), max_length=64, primary_key=True)
    user = models.ForeignKey(
        TelegramUser, on_delete=models.PROTECT, related_name="bills", verbose_name=_("user")
    )
    provider = models.CharField(_("provider"), max_length=16, default=ProviderName.QIWI.value)
    amount = MoneyField(_("amount"), max_digits=12)
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.NEW
    )
    provider_status = models.CharField(_("provider status"), max_length=32, blank=True)
    pay_url = models.URLField(_("pay link"), max_length=500, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    status_changed_at = models.DateTimeField(_("status changed"), default=timezone.now)
    credited_at = models.DateTimeField(_("credited"), null=True, blank=True)
    invoice_currency = models.CharField(_("invoice currency"), max_length=3, blank=True)
    invoice_total = models.BigIntegerField(_("invoice total"), null=True, blank=True)
    charge_id = models.CharField(
        _("charge ID"),
        max_length=255,
        blank=True,
        help_text=_("the provider's id of the payment (Telegram: telegram_payment_charge_id)"),
    )
    provider_charge_id = models.CharField(
        _("payment provider's charge ID"), max_length=255, blank=True
    )
    # The bot's message with the pay link, edited when the bill closes (no link is left).
    message_id = models.BigIntegerField(_("bill message"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        permissions = [
            ("refund_bill", _("Can refund Telegram Stars payments")),
            # The admin index's dashboard (backend/payments/dashboard_page.py).
            ("view_dashboard", _("Can see the dashboard")),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="bill_status_created"),
            models.Index(fields=["status", "status_changed_at"], name="bill_status_changed"),
            # The dashboard (backend/payments/dashboard.py) reads 30 days of each, from
            # the index alone: top-ups per day and provider, bills by outcome.
            models.Index(fields=["credited_at", "provider", "amount"], name="bill_credited"),
            models.Index(fields=["created_at", "status"], name="bill_created_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="bill_amount_positive"),
            # One payment of a provider pays one bill, once.
            models.UniqueConstraint(
                fields=["provider", "charge_id"],
                condition=~models.Q(charge_id=""),
                name="bill_one_per_provider_charge",
            ),
        ]

    def __str__(self) -> str:
        """«3f2a…: 1 000,00 ₽, ожидает оплаты» (the admin's titles and breadcrumbs)."""
        amount = money_format(self.amount, currency=self.currency)
        return f"{self.id}: {amount}, {self.get_status_display()}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class LedgerQuerySet(models.QuerySet):
    """Bulk updates and deletes are refused too; the database refuses them as well
    (triggers in migration 0002)."""

    def update(self, **kwargs):
        raise ValueError("ledger entries are append-only")

    def delete(self):
        raise ValueError("ledger entries are append-only")


class LedgerEntry(models.Model):
    """One change of a balance. Rows are only ever added: never changed, never deleted."""

    objects = LedgerQuerySet.as_manager()

    class Kind(models.TextChoices):
        TOPUP = "topup", _("top-up")
        ADJUSTMENT = "adjustment", _("adjustment")
        REFUND = "refund", _("refund")

    user = models.ForeignKey(
        TelegramUser, on_delete=models.PROTECT, related_name="ledger", verbose_name=_("user")
    )
    amount = MoneyField(_("amount"))
    balance_after = MoneyField(_("balance after"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    bill = models.ForeignKey(
        Bill,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        verbose_name=_("bill"),
    )
    admin = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("admin"),
    )
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    # The key of the admin form that made this row: a form resent (a double click, a
    # reload) finds its row and writes none. NULLs never collide, on every database.
    idempotency_key = models.CharField(
        _("form key"), max_length=64, null=True, blank=True, unique=True, editable=False
    )

    class Meta:
        verbose_name = _("balance ledger entry")
        verbose_name_plural = _("balance ledger entries")
        ordering = ["-created_at", "-id"]
        constraints = [
            # The database itself refuses a second credit of one bill.
            models.UniqueConstraint(
                fields=["bill"],
                condition=models.Q(kind="topup"),
                name="ledger_one_topup_per_bill",
            ),
            models.UniqueConstraint(
                fields=["bill"],
                condition=models.Q(kind="refund"),
                name="ledger_one_refund_per_bill",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="refund") | models.Q(bill__isnull=False, amount__lt=0),
                name="ledger_refund_has_bill",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="topup") | models.Q(bill__isnull=False, amount__gt=0),
                name="ledger_topup_has_bill",
            ),
            models.CheckConstraint(condition=~models.Q(amount=0), name="ledger_amount_not_zero"),
        ]

    def __str__(self) -> str:
        """«Пополнение +150,00 ₽» (the admin's titles, and the caption of a row on a
        user's page)."""
        return f"{capfirst(self.get_kind_display())} {money_format(self.amount, signed=True)}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("ledger entries are append-only")


class UserNotice(models.Model):
    """A message telling a user about a change of their balance that they did not make
    themselves (a refund, an admin's correction), written in the change's transaction
    and sent later by the bot process that runs the bill jobs (backend/bot/notices.py):
    the admin's request never waits for Telegram.

    Sent at most once: a notice is SENDING before the message goes out, and one found
    SENDING after a crash is UNKNOWN, never sent again."""

    Status = OutboxStatus

    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="notice", verbose_name=_("change")
    )
    show_reason = models.BooleanField(_("reason shown"), default=False)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("notice to a user")
        verbose_name_plural = _("notices to users")
        indexes = [models.Index(fields=["status", "id"], name="notice_status_idx")]

    def __str__(self) -> str:
        return f"{self.entry} → {self.get_status_display()}"


class ClosedDay(models.Model):
    """A past local day of the admin's dashboard (backend/payments/dashboard.py) in the
    zone `time_zone` (settings.TIME_ZONE when written), written once by
    `dashboard_days_close` (backend/payments/dashboard_days.py) and never changed."""

    time_zone = models.CharField(_("time zone"), max_length=64)
    day = models.DateField(_("day"))
    closed_at = models.DateTimeField(_("closed"), default=timezone.now)

    class Meta:
        abstract = True
        constraints = [models.UniqueConstraint(fields=["time_zone", "day"], name="%(class)s_once")]

    def __str__(self) -> str:
        return f"{self.day} ({self.time_zone})"


class DashboardDay(ClosedDay):
    """A closed day's new and active users and, in `topups`, its credited top-ups per
    provider: closed shortly after the day's end, when none of it can move any more
    (see backend/payments/dashboard_days.py for «active»)."""

    new_users = models.PositiveIntegerField(_("new users"))
    active_users = models.PositiveIntegerField(_("active users"))

    class Meta(ClosedDay.Meta):
        verbose_name = _("dashboard day")
        verbose_name_plural = _("dashboard days")


class DashboardDayTopups(models.Model):
    """One provider's credited top-ups on a closed dashboard day: their sum and count."""

    day = models.ForeignKey(
        DashboardDay, on_delete=models.CASCADE, related_name="topups", verbose_name=_("day")
    )
    provider = models.CharField(_("provider"), max_length=16)
    amount = MoneyField(_("amount"), max_digits=16)
    count = models.PositiveIntegerField(_("top-ups count"))

    class Meta:
        verbose_name = _("dashboard day's top-ups")
        verbose_name_plural = _("dashboard days' top-ups")
        constraints = [
            models.UniqueConstraint(fields=["day", "provider"], name="dashboard_topups_once")
        ]


class DashboardBillDay(ClosedDay):
    """The bills made on a closed day, by outcome (the dashboard's OUTCOMES buckets but
    «open»: there are none left), closed once none of them can change its bucket any
    more (see backend/payments/dashboard_days.py)."""

    paid = models.PositiveIntegerField(_("bills paid"))
    expired = models.PositiveIntegerField(_("bills expired"))
    rejected = models.PositiveIntegerField(_("bills rejected"))
    failed = models.PositiveIntegerField(_("bills not created"))

    class Meta(ClosedDay.Meta):
        verbose_name = _("dashboard day's bills")
        verbose_name_plural = _("dashboard days' bills")
