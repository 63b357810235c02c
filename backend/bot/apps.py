from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BotAppConfig(AppConfig):
    """The Django app; the bot's runtime settings are `backend.bot.config.BotConfig`."""

    name = "backend.bot"
    label = "bot"
    verbose_name = _("Bot")
