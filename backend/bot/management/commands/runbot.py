import asyncio
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Runs the Telegram bot (long polling, or a webhook server with BOT_MODE=webhook) "
        "together with the bill jobs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--worker",
            type=int,
            default=0,
            help="(internal) run as webhook worker N of BOT_WORKERS",
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
        if webhook is not None and webhook.workers > 1 and not options["worker"]:
            from backend.bot.workers import run_workers

            sys.exit(run_workers(webhook.workers))
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
        if webhook.workers > 1 and not settings.REDIS_URL:
            raise CommandError(
                "REDIS_URL is not set: BOT_WORKERS above 1 share the dialogs through Redis"
            )
        return webhook

    async def _run(self, webhook) -> None:
        from aiogram.utils.token import TokenValidationError

        from backend.bot.config import BotConfig
        from backend.bot.dispatcher import build_bot
        from backend.bot.runner import TokenRefused, run_bot
        from backend.bot.shared_state import shared_state
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
        config = BotConfig.from_settings()
        shared = shared_state(config=config, redis_url=settings.REDIS_URL, prefix=f"topup:{bot.id}")
        try:
            await run_bot(
                bot=bot, providers=providers, config=config, shared=shared, webhook=webhook
            )
        except TokenRefused as e:
            raise CommandError(str(e)) from None
