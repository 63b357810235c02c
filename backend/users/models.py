from decimal import Decimal

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from backend.common.money import MoneyField


class TelegramUser(models.Model):
    """A person who wrote to the bot.

    `balance` is a cache of the sum of the user's ledger rows, kept in kopecks
    (`MoneyField`), never above `MAX_AMOUNT`; only `backend.payments.services` writes it.
    """

    telegram_id = models.BigIntegerField("Telegram ID", unique=True)
    username = models.CharField("username", max_length=64, blank=True, default="")
    first_name = models.CharField(_("first name"), max_length=256, blank=True, default="")
    last_name = models.CharField(_("last name"), max_length=256, blank=True, default="")
    language_code = models.CharField(_("language"), max_length=16, blank=True, default="")
    balance = MoneyField(_("balance"), default=Decimal("0.00"), editable=False)
    is_blocked = models.BooleanField(_("blocked"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    # Where fiscal receipts go (54-ФЗ, YOOKASSA_RECEIPTS): an e-mail, or a Russian phone
    # as 11 digits from 7; empty: not asked yet. The form tells which (an @ or digits).
    receipt_contact = models.CharField(
        _("receipt e-mail or phone"), max_length=254, blank=True, default=""
    )
    bot_blocked_at = models.DateTimeField(
        _("blocked the bot"),
        null=True,
        blank=True,
        help_text=_("when Telegram last refused a message to this user (403)"),
    )

    class Meta:
        verbose_name = _("Telegram user")
        verbose_name_plural = _("Telegram users")
        permissions = [
            ("export_users", _("Can export users")),
            ("download_logs", _("Can download logs")),
        ]
        # The search's indexes are expressions, made on PostgreSQL by migration 0004.
        indexes = [
            models.Index(fields=["created_at"], name="telegram_user_created"),
            models.Index(fields=["last_seen_at"], name="telegram_user_last_seen"),
            # The admin's filters «blocked» and «balance above zero» at a million users;
            # with the balance, the dashboard's sum of balances reads the index alone.
            models.Index(
                fields=["id"], condition=models.Q(is_blocked=True), name="telegram_user_blocked"
            ),
            models.Index(
                fields=["id", "balance"],
                condition=models.Q(balance__gt=0),
                name="telegram_user_with_balance",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance__gte=0), name="telegram_user_balance_not_negative"
            )
        ]

    def __str__(self) -> str:
        name = f"@{self.username}" if self.username else self.first_name
        return f"{name} ({self.telegram_id})"
