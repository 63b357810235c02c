from django.conf import settings
from django.db import models
from django.utils import timezone

from backend.users.models import TelegramUser


class Bill(models.Model):
    """A bill at the payment provider; `id` is the billId we send to QIWI.

    The row is written (status NEW) before the provider is called, so a bill that
    exists at QIWI always exists here too and survives restarts.
    """

    class Status(models.TextChoices):
        NEW = "NEW", "создаётся"
        WAITING = "WAITING", "ожидает оплаты"
        PAID = "PAID", "оплачен"
        REJECTED = "REJECTED", "отклонён"
        EXPIRED = "EXPIRED", "истёк"
        FAILED = "FAILED", "ошибка создания"

    OPEN_STATUSES = (Status.NEW, Status.WAITING)

    id = models.CharField("ID счёта", max_length=64, primary_key=True)
    user = models.ForeignKey(
        TelegramUser, on_delete=models.PROTECT, related_name="bills", verbose_name="пользователь"
    )
    provider = models.CharField("провайдер", max_length=16, default="qiwi")
    amount = models.DecimalField("сумма", max_digits=12, decimal_places=2)
    currency = models.CharField("валюта", max_length=3, default="RUB")
    status = models.CharField("статус", max_length=16, choices=Status.choices, default=Status.NEW)
    provider_status = models.CharField("статус у провайдера", max_length=32, blank=True)
    pay_url = models.URLField("ссылка на оплату", max_length=500, blank=True)
    error = models.TextField("ошибка", blank=True)
    created_at = models.DateTimeField("создан", default=timezone.now)
    expires_at = models.DateTimeField("истекает")
    status_changed_at = models.DateTimeField("статус изменён", default=timezone.now)
    credited_at = models.DateTimeField("зачислен", null=True, blank=True)

    class Meta:
        verbose_name = "счёт"
        verbose_name_plural = "счета"
        indexes = [models.Index(fields=["status", "created_at"], name="bill_status_created")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="bill_amount_positive")
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} {self.status}"

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
        TOPUP = "topup", "пополнение"
        ADJUSTMENT = "adjustment", "корректировка"

    user = models.ForeignKey(
        TelegramUser, on_delete=models.PROTECT, related_name="ledger", verbose_name="пользователь"
    )
    amount = models.DecimalField("сумма", max_digits=14, decimal_places=2)
    balance_after = models.DecimalField("баланс после", max_digits=14, decimal_places=2)
    kind = models.CharField("вид", max_length=16, choices=Kind.choices)
    bill = models.ForeignKey(
        Bill,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        verbose_name="счёт",
    )
    admin = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="администратор",
    )
    reason = models.TextField("причина", blank=True)
    created_at = models.DateTimeField("время", default=timezone.now)

    class Meta:
        verbose_name = "запись журнала баланса"
        verbose_name_plural = "журнал баланса"
        ordering = ["-created_at", "-id"]
        constraints = [
            # The database itself refuses a second credit of one bill.
            models.UniqueConstraint(
                fields=["bill"],
                condition=models.Q(kind="topup"),
                name="ledger_one_topup_per_bill",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="topup") | models.Q(bill__isnull=False, amount__gt=0),
                name="ledger_topup_has_bill",
            ),
            models.CheckConstraint(condition=~models.Q(amount=0), name="ledger_amount_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.amount:+} ({self.kind})"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("ledger entries are append-only")
