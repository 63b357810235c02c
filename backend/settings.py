"""Every setting of the project, read from the environment in one place.

A `.env` file in the project root is loaded first; variables already set in the
real environment win over it. `.env.example` lists every variable.
"""

import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env", override=False)


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if not value:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """Turn `sqlite:///file` or `postgres://user:pass@host:port/name` into a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)[1:] if parts.path.startswith("/") else parts.path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / path if path else ""}
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parts.scheme!r}")


def database_config() -> dict:
    if url := env("DATABASE_URL"):
        db = database_from_url(url)
    elif name := env("DATABASE_NAME"):
        # The customer's original variables (see the task): a PostgreSQL database.
        db = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": env("DATABASE_USER"),
            "PASSWORD": env("DATABASE_PASSWORD"),
            "HOST": env("DATABASE_HOST", "localhost"),
            "PORT": env("DATABASE_PORT"),
        }
    else:
        db = database_from_url("sqlite:///db.sqlite3")
    if db["ENGINE"].endswith("sqlite3"):
        # The bot and the admin write at once: wait for the lock instead of failing,
        # and take the write lock at BEGIN so a transaction never has to upgrade.
        db["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # A file (threads of the bot share it), one per test run.
        db["TEST"] = {"NAME": BASE_DIR / f".test-db-{os.getpid()}.sqlite3"}
    # A long-running bot has no request cycle: reuse a connection for a while, but
    # check it before use, so a restarted database server does not break the bot.
    db["CONN_MAX_AGE"] = 60
    db["CONN_HEALTH_CHECKS"] = True
    return db


SECRET_KEY = env("BACKEND_SECRET_KEY") or "insecure-dev-key-set-BACKEND_SECRET_KEY"
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "backend.users",
    "backend.payments",
    "backend.bot",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "backend.wsgi.application"
ASGI_APPLICATION = "backend.asgi.application"

DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The admin speaks LANGUAGE_CODE (ru: Django's translations plus locale/ru); the
# browser's language does not switch it.
LANGUAGE_CODE = env("LANGUAGE_CODE", "ru")
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "Europe/Moscow")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"

# --- the bot -------------------------------------------------------------------------
TELEGRAM_API_TOKEN = env("TELEGRAM_API_TOKEN")
TELEGRAM_API_SERVER = env("TELEGRAM_API_SERVER", "https://api.telegram.org")
ADMIN_TELEGRAM_IDS = [int(i) for i in env_list("ADMIN_TELEGRAM_IDS") if i.lstrip("-").isdigit()]
ADMIN_SITE_URL = env("ADMIN_SITE_URL", "http://127.0.0.1:8000/admin/")

# --- payments ------------------------------------------------------------------------
QIWI_SECRET_KEY = env("QIWI_SECRET_KEY")
QIWI_API_URL = env("QIWI_API_URL", "https://api.qiwi.com")
QIWI_TIMEOUT_SECONDS = env_int("QIWI_TIMEOUT_SECONDS", 15)
BILL_LIFETIME_SECONDS = env_int("BILL_LIFETIME_SECONDS", 300)
BILL_POLL_INTERVAL_SECONDS = env_int("BILL_POLL_INTERVAL_SECONDS", 60)
MIN_AMOUNT = Decimal(env_int("MIN_AMOUNT", 1))
MAX_AMOUNT = Decimal(env_int("MAX_AMOUNT", 100000))

# --- logging (loguru; see backend/logging.py) ----------------------------------------
LOG_DIR = Path(env("LOG_DIR") or BASE_DIR / "logs")
if not LOG_DIR.is_absolute():
    LOG_DIR = BASE_DIR / LOG_DIR
LOGGING_CONFIG = "backend.logging.setup"
LOGGING = {
    "level": env("LOG_LEVEL", "INFO").upper(),
    "dir": LOG_DIR,
    "secrets": [TELEGRAM_API_TOKEN, QIWI_SECRET_KEY],
}
