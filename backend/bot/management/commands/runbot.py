import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Runs the Telegram bot (long polling) together with the bill poller."

    def handle(self, *args, **options) -> None:
        # The settings are checked before aiogram is imported: that import takes seconds.
        required = ["TELEGRAM_API_TOKEN"]
        if "qiwi" in settings.PAYMENT_PROVIDERS:
            required.append("QIWI_SECRET_KEY")
        for name in required:
            if not getattr(settings, name):
                raise CommandError(f"{name} is not set: put it into .env or the environment")
        try:
            asyncio.run(self._run())
        except KeyboardInterrupt:  # Ctrl-C before polling took over the signals
            self.stderr.write("stopped")

    async def _run(self) -> None:
        from aiogram.utils.token import TokenValidationError

        from backend.bot.config import BotConfig
        from backend.bot.dispatcher import TokenRefused, build_bot, run_bot
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
            await run_bot(bot=bot, providers=providers, config=BotConfig.from_settings())
        except TokenRefused as e:
            raise CommandError(str(e)) from None
