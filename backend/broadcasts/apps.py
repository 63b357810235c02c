from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BroadcastsAppConfig(AppConfig):
    name = "backend.broadcasts"
    label = "broadcasts"
    verbose_name = _("Broadcasts")
