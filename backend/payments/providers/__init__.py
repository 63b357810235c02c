"""The registry of payment providers: each `ProviderName` and how its adapter is made
from the settings. The adapters are imported when one is made: pyqiwip2p and aiogram
are not needed by every `manage.py` command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from django.conf import settings

from backend.payments.providers.base import PaymentProvider
from backend.payments.receipts import ReceiptSettings
from backend.payments.vocabulary import ProviderName

if TYPE_CHECKING:
    from aiogram import Bot

# Connections beyond the poller's, so that a user's bill or check button does not wait
# for a round's requests.
SPARE_CONNECTIONS = 16


def _receipts(enabled: bool) -> ReceiptSettings | None:
    """The owner's receipt codes, when receipts are on for that route."""
    if not enabled:
        return None
    return ReceiptSettings(
        vat_code=settings.YOOKASSA_VAT_CODE, tax_system_code=settings.YOOKASSA_TAX_SYSTEM_CODE
    )


def _qiwi(bot: Bot | None) -> PaymentProvider:
    """Raises ProviderAuthError for a malformed key."""
    from backend.payments.providers.qiwi import QiwiProvider

    return QiwiProvider(
        secret_key=settings.QIWI_SECRET_KEY,
        api_url=settings.QIWI_API_URL,
        timeout=settings.QIWI_TIMEOUT_SECONDS,
        max_connections=settings.BILL_POLL_CONCURRENCY + SPARE_CONNECTIONS,
    )


def _telegram(bot: Bot | None) -> PaymentProvider:
    from backend.payments.providers.telegram import TelegramPaymentsProvider

    if bot is None:
        raise ValueError("Telegram Payments go through the bot: TELEGRAM_API_TOKEN is needed")
    return TelegramPaymentsProvider(
        bot=bot,
        provider_token=settings.TELEGRAM_PAYMENTS_PROVIDER_TOKEN,
        currency=settings.TELEGRAM_PAYMENTS_CURRENCY,
        rubles_per_star=settings.RUBLES_PER_STAR,
        receipts=_receipts(settings.TELEGRAM_PAYMENTS_RECEIPTS),
    )


def _yookassa(bot: Bot | None) -> PaymentProvider:
    """The return link defaults to the bot's t.me page, whose name `bot` asks getMe for."""
    from backend.payments.providers.yookassa import YooKassaProvider

    return YooKassaProvider(
        shop_id=settings.YOOKASSA_SHOP_ID,
        secret_key=settings.YOOKASSA_SECRET_KEY,
        api_url=settings.YOOKASSA_API_URL,
        return_url=settings.YOOKASSA_RETURN_URL,
        bot=bot,
        timeout=settings.YOOKASSA_TIMEOUT_SECONDS,
        max_connections=settings.BILL_POLL_CONCURRENCY + SPARE_CONNECTIONS,
        receipts=_receipts(settings.YOOKASSA_RECEIPTS),
    )


REGISTRY: dict[ProviderName, Callable[[Bot | None], PaymentProvider]] = {
    ProviderName.QIWI: _qiwi,
    ProviderName.TELEGRAM: _telegram,
    ProviderName.YOOKASSA: _yookassa,
}


def providers_from_settings(
    bot: Bot | None, *, names: Iterable[str] | None = None
) -> dict[ProviderName, PaymentProvider]:
    """The enabled ways to pay (PAYMENT_PROVIDERS), in the order the user sees them; or,
    with `names`, those providers whether enabled or not (the admin checks and refunds
    bills of a provider switched off since). Telegram's needs the `bot`. Close each
    (`close()`) when done."""
    chosen = settings.PAYMENT_PROVIDERS if names is None else names
    return {name: REGISTRY[name](bot) for name in map(ProviderName, chosen)}
