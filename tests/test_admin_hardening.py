"""The admin's headers and sessions: the Content-Security-Policy on every response, the
idle timeout of a logged-in session, and failed logins in the log (never the password).

The browser's side of the policy (nothing in the admin breaks it) is in
test_admin_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from loguru import logger

from backend.log_setup import LOG_FILE_NAME
from backend.security import LAST_ACTIVITY_KEY
from backend.users.models import TelegramUser

LOGIN_URL = "/admin/login/"
LIST_URL = "/admin/users/telegramuser/"
PASSWORD = "pw-Boss-2024"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", PASSWORD)


@pytest.fixture
def ivan(db) -> TelegramUser:
    return TelegramUser.objects.create(telegram_id=4001, first_name="Иван")


def logged_in(boss: User) -> Client:
    """A client logged in through the login form, as a person would."""
    client = Client()
    response = client.post(LOGIN_URL, {"username": "boss", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302, response.content.decode()[:500]
    assert client.session[SESSION_KEY] == str(boss.pk)
    return client


# --- Content-Security-Policy -------------------------------------------------------------


def test_every_admin_response_carries_the_policy(boss, ivan):
    anonymous = Client()
    client = logged_in(boss)
    responses = {
        "login page": anonymous.get(LOGIN_URL),
        "redirect to the login": anonymous.get(LIST_URL),
        "failed login": anonymous.post(LOGIN_URL, {"username": "boss", "password": "wrong"}),
        "index": client.get("/admin/"),
        "users list": client.get(LIST_URL),
        "a user's page": client.get(f"{LIST_URL}{ivan.pk}/change/"),
        "adjust form": client.get(f"{LIST_URL}{ivan.pk}/adjust/"),
        "CSV export": client.get(LIST_URL + "export/csv/"),
        "a POST's redirect": client.post(f"{LIST_URL}{ivan.pk}/block/"),
        "not found": client.get("/admin/users/telegramuser/999999/change/", follow=True),
        "outside the admin": client.get("/nowhere/"),
    }
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses == {
        "login page": 200,
        "redirect to the login": 302,
        "failed login": 200,
        "index": 200,
        "users list": 200,
        "a user's page": 200,
        "adjust form": 200,
        "CSV export": 200,
        "a POST's redirect": 302,
        "not found": 200,  # the admin redirects to its index with a message
        "outside the admin": 404,
    }
    for name, response in responses.items():
        assert response.get("Content-Security-Policy") == POLICY, name


def test_the_policy_comes_from_settings(settings, db):
    settings.SECURE_CSP = {**settings.SECURE_CSP, "img-src": ["'self'"], "report-uri": ["/csp/"]}
    response = Client().get(LOGIN_URL)
    assert response["Content-Security-Policy"] == (
        POLICY.replace("img-src 'self' data:", "img-src 'self'") + "; report-uri /csp/"
    )
    settings.SECURE_CSP = {}
    assert "Content-Security-Policy" not in Client().get(LOGIN_URL)


def test_our_admin_pages_have_no_inline_script_or_style(boss, ivan):
    """What the policy would block: a <style>, a style="", an inline <script> or an
    on…= handler in the pages of our templates. (The browser test sees the rest.)"""
    client = logged_in(boss)
    for url in (
        LIST_URL,
        f"{LIST_URL}{ivan.pk}/change/",
        f"{LIST_URL}{ivan.pk}/adjust/",
        LIST_URL + "logs/",
    ):
        html = client.get(url).content.decode()
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE), url
        for script in re.findall(r"<script\b[^>]*>", html, re.IGNORECASE):
            assert " src=" in script, (url, script)
        assert "/static/users/admin.css" in html or url.endswith(("adjust/", "logs/")), url


# --- idle timeout --------------------------------------------------------------------------


def last_activity(client: Client) -> int:
    return client.session[LAST_ACTIVITY_KEY]


def move_last_activity(client: Client, seconds: int) -> int:
    """The last request `seconds` earlier than the session says: an idle pause."""
    session = client.session
    session[LAST_ACTIVITY_KEY] -= seconds
    session.save()
    return session[LAST_ACTIVITY_KEY]


def session_row(client: Client) -> Session:
    return Session.objects.get(session_key=client.session.session_key)


def test_an_hour_without_requests_logs_the_admin_out(boss):
    client = logged_in(boss)
    assert client.get(LIST_URL).status_code == 200
    move_last_activity(client, 60 * 60 + 1)

    response = client.get(LIST_URL)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?next={LIST_URL}"
    assert SESSION_KEY not in client.session
    login_page = client.get(response["Location"])
    assert login_page.status_code == 200
    assert "Сеанс завершён: больше 60 мин. без действий. Войдите снова." in (
        login_page.content.decode()
    )
    # a POST after the pause changes nothing either
    ivan = TelegramUser.objects.create(telegram_id=4002, first_name="Иван")
    client = logged_in(boss)
    move_last_activity(client, 60 * 60 + 1)
    assert client.post(f"{LIST_URL}{ivan.pk}/block/").status_code == 302
    ivan.refresh_from_db()
    assert not ivan.is_blocked


def test_requests_keep_the_session_alive_and_the_time_is_written_once_a_minute(boss):
    client = logged_in(boss)
    client.get("/admin/")
    stamp = last_activity(client)
    assert abs(stamp - timezone.now().timestamp()) < 5

    # within a minute: the session is not saved again (no cookie, same row)
    row = session_row(client)
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert "sessionid" not in response.cookies
    assert last_activity(client) == stamp
    assert session_row(client).session_data == row.session_data

    # 59 minutes of quiet, then a request: the session lives on, from now
    move_last_activity(client, 59 * 60)
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert "sessionid" in response.cookies
    assert abs(last_activity(client) - timezone.now().timestamp()) < 5
    # so another 59 minutes later it is still alive: 118 minutes after the first request
    move_last_activity(client, 59 * 60)
    assert client.get(LIST_URL).status_code == 200
    assert client.session[SESSION_KEY] == str(boss.pk)
    # a time in the future (the clock went back) is not kept: now is written
    move_last_activity(client, -3 * 60 * 60)
    assert client.get(LIST_URL).status_code == 200
    assert abs(last_activity(client) - timezone.now().timestamp()) < 5


def test_the_timeout_comes_from_settings(settings, boss):
    settings.ADMIN_SESSION_IDLE_MINUTES = 5
    client = logged_in(boss)
    client.get("/admin/")
    move_last_activity(client, 4 * 60)
    assert client.get("/admin/").status_code == 200
    move_last_activity(client, 5 * 60 + 1)
    assert client.get("/admin/").status_code == 302
    assert SESSION_KEY not in client.session

    settings.ADMIN_SESSION_IDLE_MINUTES = 0  # off
    client = logged_in(boss)
    client.get("/admin/")
    assert LAST_ACTIVITY_KEY not in client.session
    assert client.get("/admin/").status_code == 200


def test_activity_does_not_stretch_the_absolute_lifetime(settings, boss):
    """SESSION_COOKIE_AGE counts from the login: the activity writes keep the expiry."""
    settings.SESSION_COOKIE_AGE = 8 * 60 * 60
    client = logged_in(boss)
    client.get("/admin/")
    expires = session_row(client).expire_date
    login_time = last_activity(client)
    assert abs(expires.timestamp() - (login_time + 8 * 60 * 60)) < 1
    for _ in range(3):
        move_last_activity(client, 30 * 60)
        response = client.get("/admin/")
        assert response.status_code == 200
        assert session_row(client).expire_date == expires
        cookie_expires = response.cookies["sessionid"]["max-age"]
        assert abs(int(cookie_expires) - (expires - timezone.now()).total_seconds()) < 5
    # past it the session is gone, however busy the admin was
    Session.objects.filter(pk=session_row(client).pk).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    assert client.get("/admin/").status_code == 302


# --- failed logins in the log --------------------------------------------------------------


def read_log(log_dir) -> str:
    logger.complete()
    return (log_dir / LOG_FILE_NAME).read_text(encoding="utf-8")


def test_a_failed_login_is_logged_with_the_username_and_address_never_the_password(log_dir, boss):
    password = "Wr0ng-Passw0rd-xyz-4711"
    client = Client(REMOTE_ADDR="203.0.113.77")
    for username in ("boss", "mallory_нет"):
        response = client.post(LOGIN_URL, {"username": username, "password": password})
        assert response.status_code == 200  # the form again, with its error
        assert SESSION_KEY not in client.session
    # a successful login is not a failure
    client.post(LOGIN_URL, {"username": "boss", "password": PASSWORD, "next": "/admin/"})
    assert client.session[SESSION_KEY] == str(boss.pk)

    log = read_log(log_dir)
    lines = [line for line in log.splitlines() if "failed login" in line and "203.0.113.77" in line]
    assert len(lines) == 2, lines
    assert " | WARNING  | " in lines[0] and "'boss'" in lines[0]
    assert " | WARNING  | " in lines[1] and "'mallory_нет'" in lines[1]
    assert all("from 203.0.113.77 (/admin/login/)" in line for line in lines)
    assert password not in log
    assert PASSWORD not in log
