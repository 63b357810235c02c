"""The project's own system checks (registered in `UsersConfig.ready`).

Django runs them before every command that checks the system — `runserver`, `runbot`,
`migrate`, `check` — and they are registered for every run, not only `check --deploy`.
The test suite runs no system checks, so its fallback key is not refused there.
"""

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

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
