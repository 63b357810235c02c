from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from backend.payments.providers.base import PaymentProvider

if TYPE_CHECKING:
    from aiogram import Bot

# Connections beyond the poller's, so that a user's bill or check button does not wait
# for a round's requests.
SPARE_CONNECTIONS = 16


def qiwi_provider_from_settings() -> PaymentProvider:
    """The configured QIWI provider; raises ProviderAuthError for a malformed key."""
    from backend.payments.providers.qiwi import QiwiProvider

    return QiwiProvider(
        secret_key=settings.QIWI_SECRET_KEY,
        api_url=settings.QIWI_API_URL,
        timeout=settings.QIWI_TIMEOUT_SECONDS,
        max_connections=settings.BILL_POLL_CONCURRENCY + SPARE_CONNECTIONS,
    )


def telegram_provider_from_settings(bot: Bot) -> PaymentProvider:
    from backend.payments.providers.telegram import TelegramPaymentsProvider

    return TelegramPaymentsProvider(
        bot=bot,
        provider_token=settings.TELEGRAM_PAYMENTS_PROVIDER_TOKEN,
        currency=settings.TELEGRAM_PAYMENTS_CURRENCY,
        rubles_per_star=settings.RUBLES_PER_STAR,
    )


def providers_from_settings(bot: Bot) -> dict[str, PaymentProvider]:
    """The enabled ways to pay (PAYMENT_PROVIDERS), in the order the user sees them."""
    makers = {
        "qiwi": qiwi_provider_from_settings,
        "telegram": lambda: telegram_provider_from_settings(bot),
    }
    return {name: makers[name]() for name in settings.PAYMENT_PROVIDERS}
