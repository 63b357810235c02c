from django.apps import AppConfig


class BotConfig(AppConfig):
    name = "backend.bot"
    label = "bot"
    verbose_name = "Бот"
