from django.conf import settings

from backend.payments.providers.base import PaymentProvider

# Connections beyond the poller's, so that a user's bill or check button does not wait
# for a round's requests.
SPARE_CONNECTIONS = 16


def provider_from_settings() -> PaymentProvider:
    """The configured provider (QIWI); raises ProviderAuthError for a malformed key."""
    from backend.payments.providers.qiwi import QiwiProvider

    return QiwiProvider(
        secret_key=settings.QIWI_SECRET_KEY,
        api_url=settings.QIWI_API_URL,
        timeout=settings.QIWI_TIMEOUT_SECONDS,
        max_connections=settings.BILL_POLL_CONCURRENCY + SPARE_CONNECTIONS,
    )
