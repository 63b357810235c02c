from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaymentsAppConfig(AppConfig):
    name = "backend.payments"
    label = "payments"
    verbose_name = _("Payments")
