from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BotConfig(AppConfig):
    name = "backend.bot"
    label = "bot"
    verbose_name = _("Bot")
