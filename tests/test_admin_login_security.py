"""Login throttling of the admin (django-axes), through the real login form.

The semantics: ADMIN_LOCKOUT_FAILURES (5) failed logins for one username lock that
username from every address, and 5 from one address lock that address for every
username, each for ADMIN_LOCKOUT_MINUTES (15) from the failure that locked it (refused
tries meanwhile do not stretch it). The address is REMOTE_ADDR unless
ADMIN_CLIENT_IP_HEADER names the proxy's header. Every lockout is logged; axes'
commands lift one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F
from django.test import Client, RequestFactory
from loguru import logger

from backend.log_setup import LOG_FILE_NAME
from backend.security import client_ip
from tests.helpers import ROOT

LOGIN_URL = "/admin/login/"
PASSWORD = "pw-Boss-2024"
WRONG = "Wr0ng-Passw0rd-xyz-4711"
HOME = "203.0.113.10"
AWAY = "198.51.100.7"
LOCKED_TEXT = "Слишком много неудачных попыток входа"


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", PASSWORD)


@pytest.fixture
def olga(db) -> User:
    return User.objects.create_user("olga", "olga@example.com", PASSWORD, is_staff=True)


@pytest.fixture(autouse=True)
def defaults(settings):
    """The defaults, whatever the environment of the test run says."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.ADMIN_LOCKOUT_MINUTES = 15
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.ADMIN_CLIENT_IP_HEADER = ""


def log_in(username: str, password: str, address: str = HOME, **headers):
    """A fresh browser posting the login form: (client, response)."""
    client = Client(REMOTE_ADDR=address, **headers)
    response = client.post(
        LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}
    )
    return client, response


def logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def assert_refused(client: Client, response) -> None:
    assert response.status_code == 429, response.content.decode()[:300]
    assert LOCKED_TEXT in response.content.decode()
    assert not logged_in(client)


def assert_accepted(client: Client, response) -> None:
    assert response.status_code == 302, response.content.decode()[:300]
    assert logged_in(client)


def fail(times: int, username: str = "boss", address: str = HOME, **headers) -> list:
    return [log_in(username, WRONG, address, **headers)[1] for _ in range(times)]


def log_offset(log_dir) -> int:
    logger.complete()
    path = log_dir / LOG_FILE_NAME
    return path.stat().st_size if path.exists() else 0


def log_since(log_dir, offset: int) -> str:
    logger.complete()
    with (log_dir / LOG_FILE_NAME).open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8")


# --- per username, per address ----------------------------------------------------------


def test_four_failures_are_not_yet_a_lockout(boss):
    assert [r.status_code for r in fail(4)] == [200] * 4  # the form again, with its error
    assert_accepted(*log_in("boss", PASSWORD))


def test_five_failures_lock_the_username_from_every_address(boss, olga):
    responses = [log_in("boss", WRONG, f"192.0.2.{n}")[1] for n in range(1, 6)]  # 5 addresses
    assert [r.status_code for r in responses] == [200] * 4 + [429]  # the 5th locks
    assert_refused(*log_in("boss", PASSWORD, HOME))  # the right password, from anywhere
    assert_refused(*log_in("boss", PASSWORD, "192.0.2.1"))
    # one failure from each of those addresses: they are not locked for other users
    assert_accepted(*log_in("olga", PASSWORD, "192.0.2.1"))


def test_five_failures_from_one_address_lock_it_for_every_username(boss, olga):
    guesses = [log_in(f"guess{n}", WRONG, HOME)[1] for n in range(5)]  # 5 usernames
    assert [r.status_code for r in guesses] == [200] * 4 + [429]
    assert_refused(*log_in("boss", PASSWORD, HOME))
    assert_refused(*log_in("olga", PASSWORD, HOME))
    # the usernames themselves are not locked: from elsewhere they log in
    assert_accepted(*log_in("boss", PASSWORD, AWAY))


def test_the_lockout_page_is_russian_and_keeps_to_the_policy(boss):
    response = fail(5)[-1]
    html = response.content.decode()
    assert response.status_code == 429
    assert "Вход закрыт" in html
    assert "Вход с этим именем пользователя или с этого адреса закрыт на 15 минут" in html
    assert 'href="/admin/login/"' in html
    assert "Content-Security-Policy" in response.headers
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE)
    for script in re.findall(r"<script\b[^>]*>", html, re.IGNORECASE):
        assert " src=" in script, script


def test_the_login_page_itself_still_opens_while_locked(boss):
    fail(5)
    page = Client(REMOTE_ADDR=HOME).get(LOGIN_URL)
    assert page.status_code == 200 and 'name="password"' in page.content.decode()


# --- how long ---------------------------------------------------------------------------


def move_attempts_back(minutes: float) -> None:
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


def test_the_lockout_ends_after_its_minutes_and_refused_tries_do_not_stretch_it(boss):
    fail(5)
    move_attempts_back(14)
    assert_refused(*log_in("boss", PASSWORD))  # 14 minutes on: still locked
    move_attempts_back(1.02)  # 15 minutes and a second after the 5th failure
    assert_accepted(*log_in("boss", PASSWORD))


def test_the_minutes_come_from_settings(settings, boss):
    settings.ADMIN_LOCKOUT_MINUTES = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=2)
    response = fail(5)[-1]
    assert "закрыт на 2 минуты" in response.content.decode()
    move_attempts_back(2.02)
    assert_accepted(*log_in("boss", PASSWORD))


def test_the_environment_sets_the_limits():
    code = (
        "from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.ADMIN_CLIENT_IP_HEADER)"
    )
    env = {
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "backend.settings",
        "ADMIN_LOCKOUT_FAILURES": "3",
        "ADMIN_LOCKOUT_MINUTES": "2",
        "ADMIN_CLIENT_IP_HEADER": "HTTP_X_REAL_IP",
        "LOG_DIR": "",
    }
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**clean_environ(), **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["3", "0:02:00", "X-REAL-IP"]


def clean_environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("ADMIN_", "AXES_"))}


# --- lifting one --------------------------------------------------------------------------


def test_axes_reset_username_lifts_a_username_lockout(boss):
    fail(5)
    assert_refused(*log_in("boss", PASSWORD, AWAY))
    call_command("axes_reset_username", "boss", stdout=(out := _Out()))
    assert "attempts removed" in out.text
    assert_accepted(*log_in("boss", PASSWORD, HOME))


def test_axes_reset_ip_lifts_an_address_lockout(boss):
    for n in range(5):
        log_in(f"guess{n}", WRONG, HOME)
    assert_refused(*log_in("boss", PASSWORD, HOME))
    call_command("axes_reset_ip", HOME, stdout=(out := _Out()))
    assert "attempts removed" in out.text
    assert_accepted(*log_in("boss", PASSWORD, HOME))


def test_axes_reset_lifts_every_lockout(boss):
    fail(5)
    call_command("axes_reset", stdout=_Out())
    assert_accepted(*log_in("boss", PASSWORD))


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


# --- the address behind a proxy ----------------------------------------------------------


def test_x_forwarded_for_is_ignored_without_the_setting(boss, olga, log_dir):
    start = log_offset(log_dir)
    for n in range(5):  # a client "rotating" its address in a header it made up
        log_in(f"guess{n}", WRONG, HOME, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert_refused(*log_in("olga", PASSWORD, HOME, HTTP_X_FORWARDED_FOR="192.0.2.99"))
    log = log_since(log_dir, start)
    assert f"from {HOME} (/admin/login/)" in log
    assert "192.0.2." not in log


def test_behind_the_proxy_its_header_names_the_client(settings, boss, olga, log_dir):
    settings.ADMIN_CLIENT_IP_HEADER = "X-Forwarded-For"
    proxy = "127.0.0.1"
    start = log_offset(log_dir)
    for n in range(5):
        # the client forged a first value; the proxy appended the real one
        log_in(f"guess{n}", WRONG, proxy, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, {AWAY}")
    assert_refused(*log_in("boss", PASSWORD, proxy, HTTP_X_FORWARDED_FOR=AWAY))
    assert_refused(*log_in("boss", PASSWORD, proxy, HTTP_X_FORWARDED_FOR=f"{HOME}, {AWAY}"))
    # another client behind the same proxy is not locked out with it
    assert_accepted(*log_in("olga", PASSWORD, proxy, HTTP_X_FORWARDED_FOR=HOME))
    log = log_since(log_dir, start)
    assert f"from {AWAY} (/admin/login/)" in log
    assert "10.9.9." not in log
    assert AccessAttempt.objects.filter(ip_address=AWAY).count() == 5


def test_client_ip_falls_back_to_remote_addr(settings):
    factory = RequestFactory()
    settings.ADMIN_CLIENT_IP_HEADER = ""
    request = factory.get("/", REMOTE_ADDR=HOME, HTTP_X_REAL_IP=AWAY)
    assert client_ip(request) == HOME
    settings.ADMIN_CLIENT_IP_HEADER = "X-Real-IP"
    assert client_ip(request) == AWAY
    assert client_ip(factory.get("/", REMOTE_ADDR=HOME)) == HOME  # not through the proxy
    assert client_ip(factory.get("/", REMOTE_ADDR=HOME, HTTP_X_REAL_IP="nonsense")) == HOME
    v6 = factory.get("/", REMOTE_ADDR=HOME, HTTP_X_REAL_IP=" 2001:db8::1 ")
    assert client_ip(v6) == "2001:db8::1"


# --- the log ---------------------------------------------------------------------------


def test_every_lockout_is_logged_with_the_username_and_address(boss, log_dir):
    start = log_offset(log_dir)
    fail(5)
    log_in("boss", PASSWORD, AWAY)  # refused while locked
    log = log_since(log_dir, start)
    locked = [line for line in log.splitlines() if "admin login locked out" in line]
    assert len(locked) == 1, log
    assert " | WARNING  | " in locked[0]
    expected = "for 15 minutes after 5 failed logins: username 'boss', address 203.0.113.10"
    assert expected in locked[0]
    refused = [line for line in log.splitlines() if "admin login refused" in line]
    assert len(refused) == 1 and "username 'boss', address 198.51.100.7" in refused[0]
    assert PASSWORD not in log and WRONG not in log
