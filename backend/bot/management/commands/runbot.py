import asyncio
import gc
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
        from backend.bot.config import webhook_config_from_settings
        from backend.checks import bot_settings_errors

        if errors := bot_settings_errors():
            raise CommandError(errors[0])
        try:
            webhook = webhook_config_from_settings()
        except ValueError as e:
            raise CommandError(str(e)) from None
        if webhook is not None and webhook.workers > 1 and not options["worker"]:
            from backend.bot.workers import run_workers

            sys.exit(run_workers(webhook.workers))
        try:
            asyncio.run(self._run(webhook))
        except KeyboardInterrupt:  # Ctrl-C before the bot took over the signals
            self.stderr.write("stopped")

    async def _run(self, webhook) -> None:
        from aiogram.utils.token import TokenValidationError

        from backend.bot.client import build_bot
        from backend.bot.config import BotConfig
        from backend.bot.dispatcher import build_dispatcher
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
        dp = build_dispatcher(providers=providers, config=config, shared=shared)
        # What start-up made (Django, aiogram, pydantic: most of the memory) lives as long
        # as the process: frozen, the collector stops scanning it again and again, which
        # on a busy bot took about a fifth of its CPU (bench/README.md, «Webhook»).
        gc.collect()
        gc.freeze()
        try:
            await run_bot(bot=bot, dispatcher=dp, webhook=webhook)
        except TokenRefused as e:
            raise CommandError(str(e)) from None
