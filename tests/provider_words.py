"""Applying a provider's answer as its adapter would: QIWI's own word, mapped into the
shared vocabulary (backend.payments.providers.qiwi.STATUSES), the word itself kept."""

from backend.payments import services
from backend.payments.providers.qiwi import STATUSES


def bill_apply_qiwi_status(*, status: str, **kwargs) -> services.BillTransition:
    """`services.bill_apply_status` for QIWI's `status` ("PAID", "SOMETHING_NEW", …)."""
    return services.bill_apply_status(status=STATUSES.get(status), provider_status=status, **kwargs)
