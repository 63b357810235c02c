"""The docs stay true to the code: `.env.example` lists exactly the settings that
backend/settings.py reads, and deploy/nginx.conf passes the default webhook path to the
default listener and YooKassa's notifications to the admin server. Read as text, as a
newcomer would read the files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (ROOT / "backend" / "settings.py").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
NGINX = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")

# env("NAME", ...), env_int("NAME", ...), env_bool(...), env_list(...), env_proxy_ssl_header(...)
READ = re.compile(r"\benv(?:_[a-z_]+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
# Read by settings.py on purpose without a line in .env.example: name -> why.
UNDOCUMENTED: dict[str, str] = {}


def settings_read() -> set[str]:
    return set(READ.findall(SETTINGS))


def example_lines() -> dict[str, str]:
    """NAME -> value of every `NAME=value` line (comments are not settings)."""
    return dict(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE))


def default_of(name: str) -> str:
    found = re.search(rf"\benv\(\s*\"{name}\",\s*\"([^\"]*)\"", SETTINGS)
    assert found, f"no default for {name} in backend/settings.py"
    return found[1]


def test_every_example_line_is_a_setting():
    unknown = set(example_lines()) - settings_read()
    assert not unknown, f".env.example names settings that settings.py never reads: {unknown}"


def test_every_setting_is_in_the_example():
    missing = settings_read() - set(example_lines()) - set(UNDOCUMENTED)
    assert not missing, f"settings.py reads these, .env.example does not list them: {missing}"
    stale = set(UNDOCUMENTED) - settings_read()
    assert not stale, f"UNDOCUMENTED lists settings no longer read: {stale}"


def test_nginx_passes_the_default_webhook_path_to_the_default_listener():
    path, listen = default_of("WEBHOOK_PATH"), default_of("WEBHOOK_LISTEN")
    assert example_lines()["WEBHOOK_PATH"] == path
    block = re.search(rf"location = {re.escape(path)} \{{(.*?)\}}", NGINX, re.S)
    assert block, f"deploy/nginx.conf has no `location = {path}`"
    assert f"proxy_pass http://{listen};" in block[1]
    assert "X-Telegram-Bot-Api-Secret-Token" in block[1]
    assert "client_max_body_size 1m;" in block[1]


def test_nginx_passes_yookassas_notifications_to_the_admin_server():
    from backend.payments.notifications import NOTIFICATION_PATH

    block = re.search(rf"location = {re.escape(NOTIFICATION_PATH)} \{{(.*?)\}}", NGINX, re.S)
    assert block, f"deploy/nginx.conf has no `location = {NOTIFICATION_PATH}`"
    assert f"proxy_pass http://{default_of('ADMIN_ADDR')};" in block[1]
    # The allow-list reads the address from the header the proxy overwrites.
    assert "proxy_set_header X-Real-IP $remote_addr;" in block[1]
    assert "proxy_set_header X-Forwarded-Proto https;" in block[1]  # no redirect to https
