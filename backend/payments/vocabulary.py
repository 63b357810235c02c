"""The words all of payments shares: which provider, and where a bill stands.

Each provider's adapter maps its own words into `BillStatus` (and keeps its raw answer);
nothing outside the adapters knows how QIWI, Telegram or YooKassa call a state. Adding a provider
is a `ProviderName` member, its line in the registry (`backend.payments.providers`) and
its adapter.

No model, no provider library is imported here: the settings read this module.
"""

from datetime import timedelta
from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _


class ProviderName(StrEnum):
    QIWI = "qiwi"
    TELEGRAM = "telegram"
    YOOKASSA = "yookassa"


# How the admin names the providers: the names their users know.
PROVIDER_TITLES: dict[str, str] = {
    ProviderName.QIWI: "QIWI",
    ProviderName.TELEGRAM: "Telegram Stars",
    ProviderName.YOOKASSA: "ЮKassa",
}

STARS_CURRENCY = "XTR"  # Telegram Stars' currency code in invoices and bills
# How far back a Stars payment is looked for at Telegram (getStarTransactions): an
# unpaid Stars bill younger than this may still be credited by the reconciliation.
STARS_RECONCILE_WINDOW = timedelta(days=7)


class BillStatus(models.TextChoices):
    """A bill's state, whoever its provider. A provider reports WAITING, PAID, REJECTED
    or EXPIRED; the others are ours: NEW (written, the provider not yet asked), FAILED
    (the provider refused to make it), REFUNDING and REFUNDED."""

    NEW = "NEW", _("being created")
    WAITING = "WAITING", _("awaiting payment")
    PAID = "PAID", _("paid")
    REJECTED = "REJECTED", _("rejected")
    EXPIRED = "EXPIRED", _("expired")
    FAILED = "FAILED", _("creation failed")
    REFUNDING = "REFUNDING", _("being refunded")
    REFUNDED = "REFUNDED", _("refunded")
