import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Runs the Telegram bot (long polling, or a webhook server with BOT_MODE=webhook) "
        "together with the bill jobs."
    )

    def handle(self, *args, **options) -> None:
        # The settings are checked before aiogram is imported: that import takes seconds.
        required = ["TELEGRAM_API_TOKEN"]
        if "qiwi" in settings.PAYMENT_PROVIDERS:
            required.append("QIWI_SECRET_KEY")
        for name in required:
            if not getattr(settings, name):
                raise CommandError(f"{name} is not set: put it into .env or the environment")
        webhook = self._webhook_config()
        try:
            asyncio.run(self._run(webhook))
        except KeyboardInterrupt:  # Ctrl-C before the bot took over the signals
            self.stderr.write("stopped")

    def _webhook_config(self):
        """None for polling; the checked webhook settings for webhook mode."""
        from backend.bot.webhook import WebhookConfig

        if settings.BOT_MODE == "polling":
            return None
        if settings.BOT_MODE != "webhook":
            raise CommandError(f"BOT_MODE must be polling or webhook, got {settings.BOT_MODE!r}")
        try:
            webhook = WebhookConfig.from_values(
                base_url=settings.WEBHOOK_BASE_URL,
                path=settings.WEBHOOK_PATH,
                secret=settings.WEBHOOK_SECRET,
                listen=settings.WEBHOOK_LISTEN,
                max_connections=settings.WEBHOOK_MAX_CONNECTIONS,
                workers=settings.BOT_WORKERS,
            )
        except ValueError as e:
            raise CommandError(str(e)) from None
        if webhook.workers > 1:
            raise CommandError("BOT_WORKERS above 1 is not supported yet: set BOT_WORKERS=1")
        return webhook

    async def _run(self, webhook) -> None:
        from aiogram.utils.token import TokenValidationError

        from backend.bot.config import BotConfig
        from backend.bot.dispatcher import build_bot
        from backend.bot.runner import TokenRefused, run_bot
        from backend.payments.providers import providers_from_settings
        from backend.payments.providers.base import ProviderAuthError

        try:
            bot = build_bot(
                token=settings.TELEGRAM_API_TOKEN, api_server=settings.TELEGRAM_API_SERVER
            )
        except TokenValidationError:
            raise CommandError(
                "TELEGRAM_API_TOKEN is not a bot token (get one from @BotFather)"
            ) from None
        try:
            providers = providers_from_settings(bot)
        except ProviderAuthError as e:
            await bot.session.close()
            raise CommandError(str(e)) from None
        try:
            await run_bot(
                bot=bot, providers=providers, config=BotConfig.from_settings(), webhook=webhook
            )
        except TokenRefused as e:
            raise CommandError(str(e)) from None
