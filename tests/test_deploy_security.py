"""Deployment security: `check --deploy` is clean with production settings, no start
without a secret key of our own, the key that run.sh makes, and the admin's CSRF
protection, its permission on logs and exports, and its log folder."""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import stat
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.core.checks import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from dotenv import dotenv_values

from backend.checks import secret_key_check
from backend.log_files import log_files
from backend.payments.models import LedgerEntry
from backend.users.models import TelegramUser

ROOT = Path(__file__).resolve().parent.parent
ENSURE_KEY = ROOT / "scripts" / "ensure_secret_key.py"
LIST_URL = "/admin/users/telegramuser/"
LOGS_URL = LIST_URL + "logs/"
LOGIN_URL = "/admin/login/"
SECURITY_VARIABLES = (
    "BACKEND_SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_COOKIES",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_REFERRER_POLICY",
)


def new_key() -> str:
    return secrets.token_urlsafe(50)


def production(**values: str) -> dict[str, str]:
    """Behind an HTTPS proxy: our own key, our host name, the proxy's header."""
    return {
        "BACKEND_SECRET_KEY": new_key(),
        "ALLOWED_HOSTS": "admin.example.com",
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto,https",
        **values,
    }


def process_env(tmp_path: Path, values: dict[str, str]) -> dict[str, str]:
    """The environment of a manage.py process that no .env can change: every variable
    .env.example or the developer's .env names is set explicitly (the documented example
    values, the security ones empty, i.e. their defaults), then `values` on top."""
    example = {name: value or "" for name, value in dotenv_values(ROOT / ".env.example").items()}
    names = set(example) | set(SECURITY_VARIABLES)
    if (ROOT / ".env").is_file():
        names |= set(dotenv_values(ROOT / ".env"))  # names only, its values are never used
    env = {name: value for name, value in os.environ.items() if name not in names}
    env |= {name: example.get(name, "") for name in names}
    env |= {name: "" for name in SECURITY_VARIABLES}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "DATABASE_NAME": "",
        "LOG_DIR": str(tmp_path / "logs"),
        "TELEGRAM_API_SERVER": "http://127.0.0.1:9",
        "QIWI_API_URL": "http://127.0.0.1:9",
        "PYTHONIOENCODING": "utf-8",
    }
    return env | values


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def manage(tmp_path: Path, *args: str, **values: str) -> subprocess.CompletedProcess:
    return run(["manage.py", *args], process_env(tmp_path, values))


# --- check --deploy ------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    values = production()
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **values)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "ERRORS" not in output
    assert "System check identified no issues" in result.stdout
    assert values["BACKEND_SECRET_KEY"] not in output


def test_without_the_proxy_header_only_the_redirect_is_missing(tmp_path):
    """Django cannot tell HTTPS requests from HTTP ones then: the redirect stays off (it
    would loop behind the proxy) and check --deploy says the proxy has to redirect."""
    result = manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production(
            SECURE_PROXY_SSL_HEADER=""
        )
    )  # fmt: skip
    assert result.returncode == 1
    assert re.findall(r"\((\w+\.[WE]\d+)\)", result.stderr) == ["security.W008"]


SETTINGS_SCRIPT = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "backend.settings"
from django.conf import settings as s
print(json.dumps({name: getattr(s, name) for name in (
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
    "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SILENCED_SYSTEM_CHECKS",
    "SECURE_CONTENT_TYPE_NOSNIFF", "SECURE_REFERRER_POLICY", "X_FRAME_OPTIONS",
)}))
"""
PRODUCTION_SETTINGS = {
    "DEBUG": False,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SECURE_SSL_REDIRECT": True,
    "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": False,
    "SILENCED_SYSTEM_CHECKS": ["security.W021"],
    "SECURE_CONTENT_TYPE_NOSNIFF": True,
    "SECURE_REFERRER_POLICY": "same-origin",
    "X_FRAME_OPTIONS": "DENY",
}
PLAIN_HTTP = {
    "SESSION_COOKIE_SECURE": False,
    "CSRF_COOKIE_SECURE": False,
    "SECURE_SSL_REDIRECT": False,
    "SECURE_HSTS_SECONDS": 0,
}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(production(), PRODUCTION_SETTINGS, id="production"),
        pytest.param(
            production(SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO, https"),
            PRODUCTION_SETTINGS,
            id="django-spelling-of-the-header",
        ),
        pytest.param(
            production(SECURE_PROXY_SSL_HEADER=""),
            {**PRODUCTION_SETTINGS, "SECURE_SSL_REDIRECT": False, "SECURE_PROXY_SSL_HEADER": None},
            id="no-proxy-header",
        ),
        pytest.param(
            production(SECURE_COOKIES="false"),
            {**PRODUCTION_SETTINGS, **PLAIN_HTTP},
            id="plain-http-like-run.sh",
        ),
        pytest.param(
            {"DEBUG": "true", "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto,https"},
            {**PRODUCTION_SETTINGS, **PLAIN_HTTP, "DEBUG": True},
            id="debug",
        ),
        pytest.param(
            production(
                SECURE_SSL_REDIRECT="false",
                SECURE_HSTS_SECONDS="3600",
                SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
                SECURE_HSTS_PRELOAD="true",
                SECURE_REFERRER_POLICY="no-referrer",
            ),
            {
                **PRODUCTION_SETTINGS,
                "SECURE_SSL_REDIRECT": False,
                "SECURE_HSTS_SECONDS": 3600,
                "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
                "SECURE_HSTS_PRELOAD": True,
                "SILENCED_SYSTEM_CHECKS": [],
                "SECURE_REFERRER_POLICY": "no-referrer",
            },
            id="every-choice-set",
        ),
    ],
)
def test_security_settings_come_from_the_environment(tmp_path, values, expected):
    result = run(["-c", SETTINGS_SCRIPT], process_env(tmp_path, values))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


# --- no start without a secret key ----------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["check"],
        ["migrate", "--noinput"],
        ["runbot"],
        ["runserver", "--noreload", "127.0.0.1:0"],
    ],
    ids=lambda command: command[0],
)
def test_commands_refuse_to_start_without_a_secret_key(tmp_path, command):
    result = manage(tmp_path, *command, **production(BACKEND_SECRET_KEY=""))
    assert result.returncode != 0
    assert "(backend.E001) BACKEND_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert "TELEGRAM_API_TOKEN" not in result.stderr  # runbot stopped before its own checks
    database = tmp_path / "x.sqlite3"
    if database.exists():  # migrate may have connected, but it applied nothing
        with sqlite3.connect(database) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == []


def test_a_too_short_key_is_refused_without_being_printed(tmp_path):
    key = "Sh0rt-but-not-empty-" + "x" * 20
    result = manage(tmp_path, "check", **production(BACKEND_SECRET_KEY=key))
    assert result.returncode != 0
    assert "(backend.E002) BACKEND_SECRET_KEY is too weak" in result.stderr
    assert key not in result.stdout + result.stderr


def test_debug_needs_no_secret_key(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true", BACKEND_SECRET_KEY="")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_key_check_runs_always_not_only_with_deploy():
    assert secret_key_check in registry.registry.get_checks(include_deployment_checks=False)


@pytest.mark.parametrize(
    ("key", "error_id"),
    [
        pytest.param(django_settings.DEV_SECRET_KEY, "backend.E001", id="the-fallback-key"),
        pytest.param("", "backend.E001", id="empty"),
        pytest.param("k" * 49 + "eyz", "backend.E002", id="few-unique-characters"),
        pytest.param(new_key()[:49], "backend.E002", id="49-characters"),
        pytest.param("django-insecure-" + new_key(), "backend.E002", id="django-insecure"),
    ],
)
def test_weak_keys_are_errors_when_debug_is_off(settings, key, error_id):
    settings.DEBUG = False
    settings.SECRET_KEY = key
    assert [error.id for error in secret_key_check(None)] == [error_id]
    with pytest.raises(SystemCheckError, match="BACKEND_SECRET_KEY") as refused:
        call_command("check")
    if key:
        assert key not in str(refused.value)
    settings.DEBUG = True
    assert secret_key_check(None) == []


def test_a_good_key_passes(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = new_key()
    assert secret_key_check(None) == []


# --- the key of run.sh ----------------------------------------------------------------


def ensure_key(env_file: Path, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BACKEND_SECRET_KEY"} | environment
    result = run([str(ENSURE_KEY), str(env_file)], env)
    assert result.returncode == 0, result.stderr
    return result


def key_lines(env_file: Path) -> list[str]:
    return [line for line in env_file.read_text().splitlines() if line.startswith("BACKEND_")]


def assert_not_printed(result: subprocess.CompletedProcess, env_file: Path) -> None:
    key = dotenv_values(env_file)["BACKEND_SECRET_KEY"]
    assert key and key not in result.stdout + result.stderr


def test_a_key_is_made_once_when_there_is_no_env_file(tmp_path):
    env_file = tmp_path / ".env"
    first = ensure_key(env_file)
    assert "BACKEND_SECRET_KEY" in first.stdout
    assert_not_printed(first, env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    key = dotenv_values(env_file)["BACKEND_SECRET_KEY"]
    assert len(key) >= 50 and len(set(key)) >= 5
    assert len(key_lines(env_file)) == 1
    written = env_file.read_bytes()

    again = ensure_key(env_file)
    assert again.stdout == again.stderr == ""
    assert env_file.read_bytes() == written


def test_the_empty_key_line_of_an_env_file_copied_from_the_example_is_filled(tmp_path, settings):
    env_file = tmp_path / ".env"
    example = (ROOT / ".env.example").read_text()
    assert "\nBACKEND_SECRET_KEY=\n" in example
    env_file.write_text(example)
    env_file.chmod(0o644)
    result = ensure_key(env_file)
    assert_not_printed(result, env_file)
    key = dotenv_values(env_file)["BACKEND_SECRET_KEY"]
    assert key_lines(env_file) == [f"BACKEND_SECRET_KEY={key}"]  # one line, the same place
    text = env_file.read_text()
    assert text == example.replace("\nBACKEND_SECRET_KEY=\n", f"\nBACKEND_SECRET_KEY={key}\n")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    settings.DEBUG = False
    settings.SECRET_KEY = key
    assert secret_key_check(None) == []
    ensure_key(env_file)
    assert env_file.read_text() == text


@pytest.mark.parametrize(
    "empty",
    ["BACKEND_SECRET_KEY=", "export BACKEND_SECRET_KEY = ''", "BACKEND_SECRET_KEY=  # set me"],
)
def test_the_last_empty_assignment_is_the_one_filled(tmp_path, empty):
    env_file = tmp_path / ".env"
    env_file.write_text(f"BACKEND_SECRET_KEY=\nDEBUG=false\n{empty}\nLOG_LEVEL=INFO")
    ensure_key(env_file)
    key = dotenv_values(env_file)["BACKEND_SECRET_KEY"]
    assert len(key) >= 50
    assert (
        env_file.read_text()
        == f"BACKEND_SECRET_KEY=\nDEBUG=false\nBACKEND_SECRET_KEY={key}\nLOG_LEVEL=INFO"
    )


def test_a_symlinked_env_file_keeps_its_link(tmp_path):
    target = tmp_path / "secrets" / "topup.env"
    target.parent.mkdir()
    target.write_text("BACKEND_SECRET_KEY=\n")
    env_file = tmp_path / ".env"
    env_file.symlink_to(target)
    ensure_key(env_file)
    assert env_file.is_symlink()
    assert len(dotenv_values(target)["BACKEND_SECRET_KEY"]) >= 50
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["topup.env"]  # no temporary left


def test_an_env_file_without_a_last_newline_gets_the_key_on_a_line_of_its_own(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=false")
    env_file.chmod(0o644)
    ensure_key(env_file)
    values = dotenv_values(env_file)
    assert values["DEBUG"] == "false"
    assert len(values["BACKEND_SECRET_KEY"]) >= 50
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_an_existing_key_is_kept(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('TELEGRAM_API_TOKEN=x\nBACKEND_SECRET_KEY="my own key"\n')
    before = env_file.read_bytes()
    result = ensure_key(env_file)
    assert result.stdout == result.stderr == ""
    assert env_file.read_bytes() == before


def test_a_key_from_the_environment_is_left_alone(tmp_path):
    env_file = tmp_path / ".env"
    result = ensure_key(env_file, BACKEND_SECRET_KEY=new_key())
    assert result.stdout == ""
    assert not env_file.exists()


def test_run_sh_makes_the_key_before_migrate_and_serves_plain_http_cookies():
    script = (ROOT / "scripts" / "run.sh").read_text()
    assert script.index("scripts/ensure_secret_key.py") < script.index("manage.py migrate")
    assert script.index("export SECURE_COOKIES=false") < script.index("-m gunicorn")


# --- the admin: CSRF on every form ----------------------------------------------------


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", "pw-Boss-2024")


@pytest.fixture
def csrf_client(boss) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(boss)
    return client


@pytest.fixture
def ivan(db) -> TelegramUser:
    return TelegramUser.objects.create(telegram_id=3001, first_name="Иван")


@pytest.fixture
def olga(db) -> TelegramUser:
    return TelegramUser.objects.create(telegram_id=3002, first_name="Ольга", is_blocked=True)


def csrf_token(client: Client, page: str) -> str:
    """The token a browser would post: the page sets the cookie, the form carries it."""
    response = client.get(page)
    assert response.status_code == 200
    return str(response.context["csrf_token"])


def admin_posts(ivan: TelegramUser, olga: TelegramUser) -> list[tuple[str, dict]]:
    return [
        (f"{LIST_URL}{ivan.pk}/block/", {}),
        (f"{LIST_URL}{olga.pk}/unblock/", {}),
        (
            f"{LIST_URL}{ivan.pk}/adjust/",
            {"amount": "25", "reason": "бонус", "seen_balance": "0", "key": "0" * 32},
        ),
        (LIST_URL, {"action": "block_users", "_selected_action": [olga.pk, ivan.pk]}),
    ]


def state(*users: TelegramUser) -> list:
    rows = TelegramUser.objects.filter(pk__in=[u.pk for u in users]).order_by("pk")
    return [
        list(rows.values_list("is_blocked", "balance")),
        LedgerEntry.objects.count(),
        LogEntry.objects.count(),
    ]


def test_admin_posts_without_a_csrf_token_are_refused_and_change_nothing(csrf_client, ivan, olga):
    before = state(ivan, olga)
    for url, data in admin_posts(ivan, olga):
        response = csrf_client.post(url, data)
        assert response.status_code == 403, url
        assert b"CSRF" in response.content
        wrong = csrf_client.post(url, {**data, "csrfmiddlewaretoken": "x" * 64})
        assert wrong.status_code == 403, url
    assert state(ivan, olga) == before


def test_admin_posts_with_the_token_work(csrf_client, ivan, olga):
    token = csrf_token(csrf_client, f"{LIST_URL}{ivan.pk}/change/")
    posts = admin_posts(ivan, olga)
    for url, data in posts[:3]:
        response = csrf_client.post(url, {**data, "csrfmiddlewaretoken": token})
        assert response.status_code == 302, (url, response.content.decode()[:500])
    ivan.refresh_from_db()
    olga.refresh_from_db()
    assert (ivan.is_blocked, ivan.balance, olga.is_blocked) == (True, Decimal("25"), False)
    url, data = posts[3]
    token = csrf_token(csrf_client, LIST_URL)
    response = csrf_client.post(url, {**data, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    olga.refresh_from_db()
    assert olga.is_blocked


def test_the_login_form_needs_the_token(boss):
    client = Client(enforce_csrf_checks=True)
    credentials = {"username": "boss", "password": "pw-Boss-2024", "next": "/admin/"}
    assert client.post(LOGIN_URL, credentials).status_code == 403
    assert SESSION_KEY not in client.session
    token = csrf_token(client, LOGIN_URL)
    response = client.post(LOGIN_URL, {**credentials, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(boss.pk)


def test_behind_the_proxy_http_is_redirected_and_only_our_origin_may_post(settings, boss, ivan):
    """The production settings (see PRODUCTION_SETTINGS) with the admin: no redirect
    loop when the proxy says HTTPS, HSTS on HTTPS answers, a foreign Origin refused."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.ALLOWED_HOSTS = ["admin.example.com"]
    # what the proxy passes on: the host asked for, and that it came over HTTPS
    proxied = {"HTTP_HOST": "admin.example.com", "HTTP_X_FORWARDED_PROTO": "https"}
    client = Client(enforce_csrf_checks=True, **proxied)
    client.force_login(boss)
    plain = Client(HTTP_HOST="admin.example.com").get(LIST_URL)
    assert plain.status_code == 301
    assert plain["Location"] == "https://admin.example.com" + LIST_URL
    page = client.get(f"{LIST_URL}{ivan.pk}/change/")
    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin"
    token = str(page.context["csrf_token"])
    url = f"{LIST_URL}{ivan.pk}/block/"
    foreign = client.post(url, {"csrfmiddlewaretoken": token}, HTTP_ORIGIN="https://evil.example")
    assert foreign.status_code == 403
    ivan.refresh_from_db()
    assert not ivan.is_blocked
    ours = client.post(url, {"csrfmiddlewaretoken": token}, HTTP_ORIGIN="https://admin.example.com")
    assert ours.status_code == 302
    ivan.refresh_from_db()
    assert ivan.is_blocked


# --- logs and exports: permission, and nothing outside LOG_DIR ------------------------


@pytest.fixture
def log_dir(settings, tmp_path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "bot.log").write_text("today\n", encoding="utf-8")
    settings.LOG_DIR = folder
    return folder


@pytest.mark.parametrize(
    "url",
    [LIST_URL + "export/csv/", LIST_URL + "export/xlsx/", LOGS_URL, LOGS_URL + "bot.log/"],
)
def test_anonymous_users_are_sent_to_the_login_and_get_no_data(db, ivan, log_dir, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)
    assert "Content-Disposition" not in response
    assert b"today" not in response.content and b"3001" not in response.content


def test_a_symlink_in_the_log_folder_leads_nowhere(boss, log_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n", encoding="utf-8")
    (log_dir / "evil.log").symlink_to(outside / "secret.txt")
    (log_dir / "relative.log").symlink_to(Path("..") / "outside" / "secret.txt")
    (log_dir / "folder").symlink_to(outside, target_is_directory=True)
    (log_dir / "dangling.log").symlink_to(tmp_path / "missing.txt")

    assert [name for name, _ in log_files()] == ["bot.log"]
    client = Client()
    client.force_login(boss)
    page = client.get(LOGS_URL)
    assert [f["name"] for f in page.context["files"]] == ["bot.log"]
    for name in ("evil.log", "relative.log", "folder", "dangling.log", "folder/secret.txt"):
        response = client.get(f"{LOGS_URL}{name}/", follow=True)
        assert "Content-Disposition" not in response, name
        assert b"TOP SECRET" not in response.content, name


def test_a_hard_link_in_the_log_folder_is_neither_listed_nor_served(boss, log_dir, tmp_path):
    outside = tmp_path / "project"
    outside.mkdir()
    (outside / ".env").write_text("TOP SECRET\n", encoding="utf-8")
    os.link(outside / ".env", log_dir / "x.log")  # ln .env logs/x.log
    (log_dir / "evil.log").symlink_to(outside / ".env")
    (log_dir / "bot.1.log").write_text("TOP SECRET\n", encoding="utf-8")
    os.link(log_dir / "bot.1.log", log_dir / "copy.log")  # both names inside: still two
    os.mkfifo(log_dir / "pipe.log")

    assert [name for name, _ in log_files()] == ["bot.log"]
    client = Client()
    client.force_login(boss)
    page = client.get(LOGS_URL)
    assert [f["name"] for f in page.context["files"]] == ["bot.log"]
    for name in ("x.log", "evil.log", "bot.1.log", "copy.log", "pipe.log"):
        response = client.get(f"{LOGS_URL}{name}/")
        assert response.status_code == 404, name
        assert "Content-Disposition" not in response, name
        assert b"TOP SECRET" not in response.content, name
    real = client.get(f"{LOGS_URL}bot.log/")
    assert real.status_code == 200
    assert b"".join(real.streaming_content) == b"today\n"


# Swaps logs/swap.log, as fast as it can, between a file of its own and a hard link to a
# secret: the admin lists one and opens the other.
SWAPPER = """
import os, sys
folder, secret = sys.argv[1:]
target, staging = os.path.join(folder, "swap.log"), os.path.join(folder, "staging")
while True:
    with open(staging, "w") as f:
        f.write("harmless\\n")
    os.replace(staging, target)
    os.link(secret, staging)
    os.replace(staging, target)
"""


def test_a_log_swapped_for_a_hard_link_after_the_listing_is_not_served(boss, log_dir, tmp_path):
    secret = tmp_path / ".env"
    secret.write_text("TOP SECRET\n", encoding="utf-8")
    client = Client()
    client.force_login(boss)
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(log_dir), str(secret)])
    served = refused = 0
    try:
        deadline = time.monotonic() + 20
        while not (log_dir / "swap.log").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(300):
            response = client.get(f"{LOGS_URL}swap.log/")
            if response.status_code == 200:
                assert b"".join(response.streaming_content) == b"harmless\n"
                served += 1
            else:
                assert response.status_code == 404
                assert b"TOP SECRET" not in response.content
                refused += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert refused and served + refused == 300  # the swap went on under the admin's feet
