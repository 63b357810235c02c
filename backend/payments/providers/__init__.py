from django.conf import settings

from backend.payments.providers.base import PaymentProvider


def provider_from_settings() -> PaymentProvider:
    """The configured provider (QIWI); raises ProviderAuthError for a malformed key."""
    from backend.payments.providers.qiwi import QiwiProvider

    return QiwiProvider(
        secret_key=settings.QIWI_SECRET_KEY,
        api_url=settings.QIWI_API_URL,
        timeout=settings.QIWI_TIMEOUT_SECONDS,
    )
