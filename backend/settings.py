"""Every setting of the project, read from the environment in one place.

A `.env` file in the project root is loaded first; variables already set in the
real environment win over it. `.env.example` lists every variable.
"""

import base64
import os
import sys
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from backend.log_setup import process_log_name
from backend.payments.receipts import TAX_SYSTEM_CODES, VAT_CODES
from backend.payments.vocabulary import ProviderName

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env", override=False)


def env(name: str, default: str = "") -> str:
    """The variable, or `default` when it is unset or empty (as in a copied .env.example)."""
    return os.environ.get(name, "").strip() or default


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


SERVER_ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}


def database_from_url(url: str) -> dict:
    """Turn `sqlite:///file`, `postgres://user:pass@host:port/name` or
    `mysql://user:pass@host:port/name` into a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)[1:] if parts.path.startswith("/") else parts.path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / path if path else ""}
    if parts.scheme in SERVER_ENGINES:
        return {
            "ENGINE": SERVER_ENGINES[parts.scheme],
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parts.scheme!r}")


# utf8mb4: every character a Telegram name can hold (emoji too); binary comparison, so
# charge ids and bill ids are unique as written (the users search has its own
# case-insensitive columns: backend/users/migrations); strict mode: a value that does
# not fit is an error, never cut or zeroed.
MYSQL_CHARSET = "utf8mb4"
MYSQL_COLLATION = "utf8mb4_bin"
MYSQL_SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


def mysql_options(db: dict) -> None:
    options = db.setdefault("OPTIONS", {})
    options.setdefault("charset", MYSQL_CHARSET)
    options.setdefault(
        "init_command",
        f"SET sql_mode='{MYSQL_SQL_MODE}'",
    )
    options.setdefault("isolation_level", "read committed")
    db["TEST"] = {"CHARSET": MYSQL_CHARSET, "COLLATION": MYSQL_COLLATION}


def database_config() -> dict:
    if url := env("DATABASE_URL"):
        db = database_from_url(url)
    elif name := env("DATABASE_NAME"):
        # The customer's original variables (see the task): PostgreSQL, or MySQL/MariaDB
        # with DATABASE_ENGINE=mysql.
        engine = env("DATABASE_ENGINE", "postgresql").lower()
        if engine not in SERVER_ENGINES:
            raise ImproperlyConfigured(
                f"DATABASE_ENGINE must be postgresql or mysql, got {engine!r}"
            )
        db = {
            "ENGINE": SERVER_ENGINES[engine],
            "NAME": name,
            "USER": env("DATABASE_USER"),
            "PASSWORD": env("DATABASE_PASSWORD"),
            "HOST": env("DATABASE_HOST", "localhost"),
            "PORT": env("DATABASE_PORT"),
        }
    else:
        db = database_from_url("sqlite:///db.sqlite3")
    if db["ENGINE"].endswith("mysql"):
        mysql_options(db)
    if db["ENGINE"].endswith("sqlite3"):
        # The bot and the admin write at once: wait for the lock instead of failing,
        # and take the write lock at BEGIN so a transaction never has to upgrade.
        db["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # A file (threads of the bot share it), one per test run.
        db["TEST"] = {"NAME": Path(tempfile.gettempdir()) / f"topup-test-{os.getpid()}.sqlite3"}
    # A long-running bot has no request cycle: reuse a connection for a while, but
    # check it before use, so a restarted database server does not break the bot.
    db["CONN_MAX_AGE"] = 60
    db["CONN_HEALTH_CHECKS"] = True
    return db


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto,https` (or Django's `HTTP_X_FORWARDED_PROTO,https`) → the tuple
    of SECURE_PROXY_SSL_HEADER; empty → None."""
    value = env(name)
    if not value:
        return None
    header, _, expected = (part.strip() for part in value.partition(","))
    if not header or not expected:
        raise ImproperlyConfigured(
            f"{name} must be 'Header-Name,value', e.g. X-Forwarded-Proto,https"
        )
    header = header.upper().replace("-", "_")
    return (header if header.startswith("HTTP_") else f"HTTP_{header}", expected)


# --- Django and HTTPS ----------------------------------------------------------------
# The fallback key is for development and the tests only: with DEBUG off, the system
# check in backend/checks.py refuses to start with it (runserver, runbot, migrate).
DEV_SECRET_KEY = "insecure-dev-key-set-BACKEND_SECRET_KEY"
SECRET_KEY = env("BACKEND_SECRET_KEY") or DEV_SECRET_KEY
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# With DEBUG off the admin is taken to be served over HTTPS: its cookies are secure.
# SECURE_COOKIES=false is for a plain-HTTP run (scripts/run.sh sets it for its local admin).
SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
# Behind a proxy that terminates TLS: the header it sets (overwriting a client's own) and
# the value that means HTTPS. Without it Django cannot tell HTTPS requests from HTTP ones.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
# Redirecting to HTTPS here needs the header above: without it every request looks like
# HTTP and the redirect would loop behind the proxy, so then the proxy has to redirect.
SECURE_SSL_REDIRECT = env_bool(
    "SECURE_SSL_REDIRECT", SECURE_COOKIES and bool(SECURE_PROXY_SSL_HEADER)
)
# HSTS is sent on HTTPS responses only. includeSubDomains reaches only the browsers of
# the admins; preload is a decision per domain (hstspreload.org): off, reminder silenced.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_COOKIES else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env("SECURE_REFERRER_POLICY") or "same-origin"  # empty: the default
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy of every response (backend/security.py; the shape of Django
# 6.0's setting of this name). The admin needs no inline script or style: ours are in
# static files, served from this origin (WhiteNoise in the admin server, or the proxy).
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# A logged-in session with no request for this long is logged out (0: never); the
# absolute lifetime is SESSION_COOKIE_AGE from the login (Django's two weeks).
ADMIN_SESSION_IDLE_MINUTES = env_int("ADMIN_SESSION_IDLE_MINUTES", 60)
# The product's name in the admin's header, the browser's title and the index page.
ADMIN_SITE_TITLE = env("ADMIN_SITE_TITLE", "Пополнение баланса")
# The index's dashboard is computed at most once in this many seconds per process (0:
# on every view): at a million bills and users its queries take about a second.
DASHBOARD_CACHE_SECONDS = env_int("DASHBOARD_CACHE_SECONDS", 60)

# --- the admin's login: throttling (django-axes) and two-factor (django-otp) ---------
# After ADMIN_LOCKOUT_FAILURES failed logins for one username (from any address), or
# from one address (for any username), that username / address is refused for
# ADMIN_LOCKOUT_MINUTES (0: until `manage.py axes_reset…` lifts it), counted from the
# failure that locked it. The address is REMOTE_ADDR, or the last value of the header
# ADMIN_CLIENT_IP_HEADER (e.g. X-Real-IP) that the trusted proxy sets: see
# backend/security.py client_ip.
ADMIN_LOCKOUT_FAILURES = env_int("ADMIN_LOCKOUT_FAILURES", 5)
ADMIN_LOCKOUT_MINUTES = env_int("ADMIN_LOCKOUT_MINUTES", 15)
if ADMIN_LOCKOUT_FAILURES < 1 or ADMIN_LOCKOUT_MINUTES < 0:
    raise ImproperlyConfigured(
        "ADMIN_LOCKOUT_FAILURES must be 1 or more, ADMIN_LOCKOUT_MINUTES 0 or more"
    )
ADMIN_CLIENT_IP_HEADER = env("ADMIN_CLIENT_IP_HEADER").removeprefix("HTTP_").replace("_", "-")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = ADMIN_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=ADMIN_LOCKOUT_MINUTES) if ADMIN_LOCKOUT_MINUTES else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own, not combined
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lockout lasts its minutes
AXES_CLIENT_IP_CALLABLE = "backend.security.client_ip"
AXES_LOCKOUT_CALLABLE = "backend.security.lockout_response"
AXES_VERBOSE = False
# ADMIN_REQUIRE_2FA=true: the admin's login asks for a TOTP code too (backend/admin_site.py);
# `manage.py totp_enrol <username>` gives a staff user the key for the app.
ADMIN_REQUIRE_2FA = env_bool("ADMIN_REQUIRE_2FA", False)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "Top-up bot admin")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a device's key or QR code

INSTALLED_APPS = [
    "backend.admin_site.AdminConfig",  # django.contrib.admin with our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "backend.admin_site.TOTPConfig",  # django_otp.plugins.otp_totp, named in Russian
    "backend.admin_site.AxesConfig",  # axes, named in Russian
    "backend.users",
    "backend.payments",
    "backend.broadcasts",
    "backend.bot",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "backend.security.ContentSecurityPolicyMiddleware",
    # Static files, served by the admin server itself (gunicorn has none of its own):
    # right after the headers above, so a static file carries them and the CSP too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified()
    "django.contrib.messages.middleware.MessageMiddleware",
    "backend.security.IdleSessionTimeoutMiddleware",  # after auth and messages
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: a locked-out login gets the lockout page
]

ROOT_URLCONF = "backend.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The admin's templates for every model (backend/templates/admin/), before
        # Django's own; a model's own ones stay in its app.
        "DIRS": [BASE_DIR / "backend" / "templates"],
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
if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # MySQL has no partial indexes and no conditional unique constraints: migrations
    # payments 0009 and users 0009 make their counterparts there.
    SILENCED_SYSTEM_CHECKS += ["models.W036", "models.W037"]
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
# The project's own static files beside the apps' (the admin's favicon).
STATICFILES_DIRS = [BASE_DIR / "backend" / "static"]
# `manage.py collectstatic` (scripts/run.sh runs it) copies the static files here; the
# admin server serves them from here through WhiteNoise (see MIDDLEWARE).
STATIC_ROOT = BASE_DIR / "static"

# --- exports (backend/users/exports) -------------------------------------------------
# The users CSV of the admin and `manage.py export_users`: excel-ru for spreadsheets in a
# Russian locale (`;`, a decimal comma, dates as 28.11.2026 08:24:22), rfc4180 for
# programs (`,`, `.`, ISO dates with the offset).
# (The names are those of backend.users.exports.columns.DIALECTS.)
EXPORT_CSV_DIALECT = env("EXPORT_CSV_DIALECT", "excel-ru").lower()
if EXPORT_CSV_DIALECT not in ("excel-ru", "rfc4180"):
    raise ImproperlyConfigured(
        "EXPORT_CSV_DIALECT: excel-ru (for Excel and LibreOffice in a Russian locale) or "
        f"rfc4180 (plain CSV for programs), got {env('EXPORT_CSV_DIALECT')!r}"
    )

# --- the admin server (scripts/run.sh runs gunicorn with scripts/gunicorn.conf.py) ----
ADMIN_ADDR = env("ADMIN_ADDR", "127.0.0.1:8000")  # host:port it listens on
ADMIN_WORKERS = env_int("ADMIN_WORKERS", 2)  # worker processes

# --- the bot -------------------------------------------------------------------------
TELEGRAM_API_TOKEN = env("TELEGRAM_API_TOKEN")
TELEGRAM_API_SERVER = env("TELEGRAM_API_SERVER", "https://api.telegram.org")
ADMIN_TELEGRAM_IDS = [int(i) for i in env_list("ADMIN_TELEGRAM_IDS") if i.lstrip("-").isdigit()]
ADMIN_SITE_URL = env("ADMIN_SITE_URL", "http://127.0.0.1:8000/admin/")

# --- payments ------------------------------------------------------------------------
# The ways to pay, in the order the user sees them: names of ProviderName (qiwi,
# telegram, yookassa).
PAYMENT_PROVIDERS = env_list("PAYMENT_PROVIDERS", ProviderName.QIWI)
if not PAYMENT_PROVIDERS or set(PAYMENT_PROVIDERS) - set(ProviderName):
    raise ImproperlyConfigured(
        f"PAYMENT_PROVIDERS: a comma list of {' and '.join(ProviderName)}, "
        f"got {env('PAYMENT_PROVIDERS')!r}"
    )
# Empty: Telegram Stars (XTR). A token from @BotFather → Payments: that provider.
TELEGRAM_PAYMENTS_PROVIDER_TOKEN = env("TELEGRAM_PAYMENTS_PROVIDER_TOKEN")
TELEGRAM_PAYMENTS_CURRENCY = env("TELEGRAM_PAYMENTS_CURRENCY", "RUB").upper()
try:
    RUBLES_PER_STAR = Decimal(env("RUBLES_PER_STAR", "1"))
except ArithmeticError:
    RUBLES_PER_STAR = Decimal(0)
if not RUBLES_PER_STAR.is_finite() or RUBLES_PER_STAR <= 0:
    raise ImproperlyConfigured(
        f"RUBLES_PER_STAR must be a positive number, got {env('RUBLES_PER_STAR')!r}"
    )
QIWI_SECRET_KEY = env("QIWI_SECRET_KEY")
QIWI_API_URL = env("QIWI_API_URL", "https://api.qiwi.com")
QIWI_TIMEOUT_SECONDS = env_int("QIWI_TIMEOUT_SECONDS", 15)
# YooKassa (backend/payments/providers/yookassa.py): the shop's id and secret key.
YOOKASSA_SHOP_ID = env("YOOKASSA_SHOP_ID")
YOOKASSA_SECRET_KEY = env("YOOKASSA_SECRET_KEY")
YOOKASSA_API_URL = env("YOOKASSA_API_URL", "https://api.yookassa.ru/v3")
# Where the payment page sends the user back; empty: the bot's t.me link (from getMe).
YOOKASSA_RETURN_URL = env("YOOKASSA_RETURN_URL")
YOOKASSA_TIMEOUT_SECONDS = env_int("YOOKASSA_TIMEOUT_SECONDS", 15)
# On: HTTP notifications (/payments/yookassa/notifications) are taken only from
# YooKassa's published addresses (backend/payments/notifications.py), the client's
# address as ADMIN_CLIENT_IP_HEADER says behind a proxy. Off: from anyone; the body is
# never trusted either way (the payment is asked about at YooKassa).
YOOKASSA_NOTIFY_IP_CHECK = env_bool("YOOKASSA_NOTIFY_IP_CHECK")
# Fiscal receipts (54-ФЗ, backend/payments/receipts.py): each YooKassa payment
# carries a receipt and the user's e-mail or phone. The VAT rate and the tax system are
# the owner's to choose (their accountant's); the codes are YooKassa's tables'.
YOOKASSA_RECEIPTS = env_bool("YOOKASSA_RECEIPTS", False)
YOOKASSA_VAT_CODE = env_int("YOOKASSA_VAT_CODE", 1)
if YOOKASSA_VAT_CODE not in VAT_CODES:
    raise ImproperlyConfigured(
        f"YOOKASSA_VAT_CODE must be one of YooKassa's vat_code values "
        f"{VAT_CODES[0]}-{VAT_CODES[-1]} (1: no VAT), got {env('YOOKASSA_VAT_CODE')!r}"
    )
# Empty: not sent (YooKassa takes the shop's one); needed only with several tax systems.
YOOKASSA_TAX_SYSTEM_CODE = (
    env_int("YOOKASSA_TAX_SYSTEM_CODE", 0) if env("YOOKASSA_TAX_SYSTEM_CODE") else None
)
if YOOKASSA_TAX_SYSTEM_CODE is not None and YOOKASSA_TAX_SYSTEM_CODE not in TAX_SYSTEM_CODES:
    raise ImproperlyConfigured(
        f"YOOKASSA_TAX_SYSTEM_CODE must be empty or one of YooKassa's tax_system_code "
        f"values {TAX_SYSTEM_CODES[0]}-{TAX_SYSTEM_CODES[-1]}, "
        f"got {env('YOOKASSA_TAX_SYSTEM_CODE')!r}"
    )
# The same receipt through Telegram Payments when the provider token's provider is
# YooKassa: the invoice asks for an e-mail and hands it and the receipt to YooKassa.
TELEGRAM_PAYMENTS_RECEIPTS = env_bool("TELEGRAM_PAYMENTS_RECEIPTS", False)
BILL_LIFETIME_SECONDS = env_int("BILL_LIFETIME_SECONDS", 300)
BILL_POLL_INTERVAL_SECONDS = env_int("BILL_POLL_INTERVAL_SECONDS", 60)
BILL_POLL_CONCURRENCY = env_int("BILL_POLL_CONCURRENCY", 64)  # QIWI/YooKassa requests at once
BOT_UPDATE_CONCURRENCY = env_int("BOT_UPDATE_CONCURRENCY", 64)  # updates handled at once
# Broadcast messages a second at most (Telegram takes about 30 a second from a bot).
BROADCAST_RATE = env_int("BROADCAST_RATE", 25)
if not 1 <= BROADCAST_RATE <= 1000:
    raise ImproperlyConfigured(
        f"BROADCAST_RATE must be 1-1000 messages a second, got {BROADCAST_RATE}"
    )
MIN_AMOUNT = Decimal(env_int("MIN_AMOUNT", 1))
MAX_AMOUNT = Decimal(env_int("MAX_AMOUNT", 100000))
MAX_OPEN_BILLS = env_int("MAX_OPEN_BILLS", 3)  # unpaid bills one user may have at once
# Expired or rejected bills are still asked about this long: a late payment is credited.
BILL_LATE_PAYMENT_GRACE_SECONDS = env_int("BILL_LATE_PAYMENT_GRACE_SECONDS", 86400)

# --- how the bot takes updates (checked by runbot: see backend/bot/webhook.py) --------
BOT_MODE = env("BOT_MODE", "polling").lower()  # polling | webhook
WEBHOOK_BASE_URL = env("WEBHOOK_BASE_URL")  # https://bot.example.com
WEBHOOK_PATH = env("WEBHOOK_PATH", "/telegram/webhook")
WEBHOOK_SECRET = env("WEBHOOK_SECRET")
WEBHOOK_LISTEN = env("WEBHOOK_LISTEN", "127.0.0.1:8081")
WEBHOOK_MAX_CONNECTIONS = env("WEBHOOK_MAX_CONNECTIONS", "40")
BOT_WORKERS = env("BOT_WORKERS", "1")
# Dialog state, per-user isolation and the flood limit shared by every bot process
# (backend/bot/shared_state.py); empty: in each process's memory.
REDIS_URL = env("REDIS_URL")

# --- logging (loguru; see backend/log_setup.py) --------------------------------------
LOG_DIR = Path(env("LOG_DIR") or BASE_DIR / "logs")
if not LOG_DIR.is_absolute():
    LOG_DIR = BASE_DIR / LOG_DIR
LOGGING_CONFIG = "backend.log_setup.setup"
LOGGING = {
    "level": env("LOG_LEVEL", "INFO").upper(),
    "dir": LOG_DIR,
    # Each process its own file, by its role: bot.log, admin.log, manage.log (and
    # admin-2.log … for a second one at once); rotated at LOG_ROTATION, LOG_RETENTION kept.
    "name": process_log_name(sys.argv),
    "rotation": env("LOG_ROTATION", "10 MB"),
    "retention": env_int("LOG_RETENTION", 10),
    "secrets": [
        TELEGRAM_API_TOKEN,
        QIWI_SECRET_KEY,
        YOOKASSA_SECRET_KEY,
        # the Basic authorization YooKassa's requests carry: as secret as the key
        base64.b64encode(f"{YOOKASSA_SHOP_ID}:{YOOKASSA_SECRET_KEY}".encode()).decode()
        if YOOKASSA_SECRET_KEY
        else "",
        TELEGRAM_PAYMENTS_PROVIDER_TOKEN,
        WEBHOOK_SECRET,
    ],
}
