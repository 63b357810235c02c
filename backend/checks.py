"""The project's own system checks (registered in `UsersAppConfig.ready`).

Django runs them before every command that checks the system — `runserver`, `runbot`,
`migrate`, `check` — and they are registered for every run, not only `check --deploy`.
An application server (gunicorn) runs none: backend/wsgi.py and asgi.py run the
security ones (`server_start_check`).
The test suite runs no system checks, so its fallback key is not refused there.
"""

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from backend.payments.vocabulary import ProviderName

# The same bar as Django's deployment warning security.W009, made an error here.
MIN_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5
INSECURE_PREFIX = "django-insecure-"
KEY_HINT = (
    "Put BACKEND_SECRET_KEY=<50 or more random characters> into .env or the environment; "
    "python -c 'import secrets; print(secrets.token_urlsafe(50))' makes one "
    "(scripts/run.sh does that by itself). For development only: DEBUG=true."
)


@register(Tags.security)
def secret_key_check(app_configs, **kwargs) -> list[CheckMessage]:
    """With DEBUG off: no start without a secret key of our own, and a strong one."""
    if settings.DEBUG:
        return []
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # an empty SECRET_KEY
        key = ""
    if not key or key == getattr(settings, "DEV_SECRET_KEY", None):
        return [
            Error(
                "BACKEND_SECRET_KEY is not set: with DEBUG off the admin site and the bot "
                "do not start with the built-in development key.",
                hint=KEY_HINT,
                id="backend.E001",
            )
        ]
    if (
        len(key) < MIN_LENGTH
        or len(set(key)) < MIN_UNIQUE_CHARACTERS
        or key.startswith(INSECURE_PREFIX)
    ):
        return [
            Error(
                f"BACKEND_SECRET_KEY is too weak: it needs at least {MIN_LENGTH} characters, "
                f"at least {MIN_UNIQUE_CHARACTERS} different ones, and not Django's "
                f"'{INSECURE_PREFIX}' prefix.",
                hint=KEY_HINT,
                id="backend.E002",
            )
        ]
    return []


@register(Tags.database)
def mysql_database_check(app_configs, databases=None, **kwargs) -> list[CheckMessage]:
    """On MySQL, before `migrate` makes a table: the database's default character set
    must be utf8mb4 (any name and emoji fit) with the binary collation (ids compare as
    written: two charge ids that differ in case are two payments); and the server must
    know the time zones (Django converts dates with CONVERT_TZ: the admin's date lists)."""
    errors = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "mysql":
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT @@character_set_database, @@collation_database, "
                "CONVERT_TZ('2000-01-01 00:00:00', 'UTC', %s)",
                [settings.TIME_ZONE],
            )
            charset, collation, converted = cursor.fetchone()
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        if (charset, collation) != (settings.MYSQL_CHARSET, settings.MYSQL_COLLATION):
            errors.append(
                Error(
                    f"the MySQL database {name} is {charset} / {collation}; the bot needs "
                    f"{settings.MYSQL_CHARSET} / {settings.MYSQL_COLLATION}",
                    hint=(
                        f"Before the first migrate: ALTER DATABASE {name} CHARACTER SET "
                        f"{settings.MYSQL_CHARSET} COLLATE {settings.MYSQL_COLLATION};"
                    ),
                    id="backend.E003",
                )
            )
        if converted is None:
            errors.append(
                Error(
                    f"the MySQL server does not know the time zone {settings.TIME_ZONE!r} "
                    "(its time zone tables are empty)",
                    hint=(
                        "Load them once, as the server's root: "
                        "mysql_tzinfo_to_sql /usr/share/zoneinfo | mysql -u root mysql"
                    ),
                    id="backend.E004",
                )
            )
    return errors


def bot_settings_errors() -> list[str]:
    """What stops `runbot` before it talks to anyone, one line each, in its words: the
    token (present and shaped like `<digits>:<secret>`, aiogram's rule), the QIWI key
    when QIWI is a way to pay, YooKassa's shop id and key when YooKassa is, Telegram's
    receipts only with a provider token in rubles, and the webhook settings in webhook
    mode. runbot and scripts/run.sh ask this before they
    start anything."""
    errors = []
    token = settings.TELEGRAM_API_TOKEN
    if not token:
        errors.append("TELEGRAM_API_TOKEN is not set: put it into .env or the environment")
    else:
        bot_id, colon, secret = token.partition(":")
        if not (colon and bot_id.isdigit() and secret) or any(c.isspace() for c in token):
            errors.append("TELEGRAM_API_TOKEN is not a bot token (get one from @BotFather)")
    if ProviderName.QIWI in settings.PAYMENT_PROVIDERS and not settings.QIWI_SECRET_KEY:
        errors.append("QIWI_SECRET_KEY is not set: put it into .env or the environment")
    if ProviderName.YOOKASSA in settings.PAYMENT_PROVIDERS:
        for name in ("YOOKASSA_SHOP_ID", "YOOKASSA_SECRET_KEY"):
            if not getattr(settings, name):
                errors.append(f"{name} is not set: put it into .env or the environment")
    if ProviderName.TELEGRAM in settings.PAYMENT_PROVIDERS and settings.TELEGRAM_PAYMENTS_RECEIPTS:
        if not settings.TELEGRAM_PAYMENTS_PROVIDER_TOKEN:
            errors.append(
                "TELEGRAM_PAYMENTS_RECEIPTS is on, but invoices are in Telegram Stars "
                "(TELEGRAM_PAYMENTS_PROVIDER_TOKEN is empty): receipts go only through a "
                "YooKassa provider token"
            )
        elif settings.TELEGRAM_PAYMENTS_CURRENCY != "RUB":
            errors.append(
                "TELEGRAM_PAYMENTS_RECEIPTS is on, but TELEGRAM_PAYMENTS_CURRENCY is "
                f"{settings.TELEGRAM_PAYMENTS_CURRENCY}: a receipt is in rubles (RUB)"
            )
    from backend.bot.config import webhook_config_from_settings

    try:
        webhook_config_from_settings()
    except ValueError as e:
        errors.append(str(e))
    return errors


def system_check_errors(*, tags: list[str] | None = None) -> list[str]:
    """The system checks that stop a start (errors, not silenced; `tags`: only those),
    one line each: its id, the message and the hint."""
    return [
        " ".join(filter(None, [message.id and f"({message.id})", message.msg, message.hint]))
        for message in run_checks(tags=tags)
        if message.is_serious() and not message.is_silenced()
    ]


def server_start_check() -> None:
    """For backend/wsgi.py and backend/asgi.py: an application server (gunicorn) runs no
    system checks, so the security ones run here, and the admin never serves with the
    development key or a weak one (its workers fail to boot, saying why)."""
    if errors := system_check_errors(tags=[Tags.security]):
        raise ImproperlyConfigured("; ".join(errors))
