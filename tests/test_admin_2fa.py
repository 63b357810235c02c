"""TOTP two-factor login to the admin (ADMIN_REQUIRE_2FA), through the real login form
with real codes computed from the device's key, and the enrolment command."""

from __future__ import annotations

import io
import os
import stat
from binascii import unhexlify
from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from loguru import logger

from backend.log_setup import LOG_FILE_NAME

LOGIN_URL = "/admin/login/"
PASSWORD = "pw-Boss-2024"
HOME = "203.0.113.20"
GENERIC_ERROR = "Введите правильные имя пользователя, пароль и код из приложения"


@pytest.fixture
def boss(db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", PASSWORD)


@pytest.fixture
def two_factor(settings):
    settings.ADMIN_REQUIRE_2FA = True
    settings.AXES_FAILURE_LIMIT = 5


def code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code the app shows (`steps_ahead` 30-second steps later: after a code was
    used, the same one is not taken again)."""
    totp = TOTP(unhexlify(device.key), device.step, device.t0, device.digits, steps_ahead)
    return f"{totp.token():0{device.digits}d}"


def enrolled(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="TOTP", confirmed=True)


def log_in(data: dict, address: str = HOME):
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN_URL, {"next": "/admin/", **data})
    return client, response


def log_text(log_dir) -> str:
    logger.complete()
    return (log_dir / LOG_FILE_NAME).read_text(encoding="utf-8")


# --- off: nothing changes -----------------------------------------------------------------


def test_with_2fa_off_a_password_is_enough(settings, boss):
    settings.ADMIN_REQUIRE_2FA = False
    page = Client().get(LOGIN_URL).content.decode()
    assert 'name="otp_token"' not in page
    client, response = log_in({"username": "boss", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


# --- on -------------------------------------------------------------------------------


def test_the_login_asks_for_the_code_and_takes_the_right_one(two_factor, boss):
    device = enrolled(boss)
    page = Client().get(LOGIN_URL).content.decode()
    assert 'name="otp_token"' in page and "Код из приложения" in page
    assert 'autocomplete="one-time-code"' in page

    client, response = log_in({"username": "boss", "password": PASSWORD, "otp_token": code(device)})
    assert response.status_code == 302, response.content.decode()[:500]
    assert client.session[SESSION_KEY] == str(boss.pk)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/users/telegramuser/").status_code == 200


@pytest.mark.parametrize(
    ("token", "reason"),
    [("", "no TOTP code"), ("000000", "wrong TOTP code"), ("12ab56", "wrong TOTP code")],
)
def test_a_missing_or_wrong_code_is_refused(two_factor, boss, log_dir, token, reason):
    device = enrolled(boss)
    if token == "000000" and code(device) == token:  # one chance in a million
        token = "000001"
    client, response = log_in({"username": "boss", "password": PASSWORD, "otp_token": token})
    html = response.content.decode()
    assert response.status_code == 200
    assert GENERIC_ERROR in html
    assert SESSION_KEY not in client.session
    assert PASSWORD not in html  # the password is not rendered back into the page
    line = f"failed login: username 'boss' from {HOME} (/admin/login/): {reason}"
    assert line in log_text(log_dir)


def test_a_wrong_password_with_a_right_code_is_refused_with_the_same_message(two_factor, boss):
    device = enrolled(boss)
    client, response = log_in({"username": "boss", "password": "wrong", "otp_token": code(device)})
    assert response.status_code == 200 and GENERIC_ERROR in response.content.decode()
    assert SESSION_KEY not in client.session


def test_a_user_without_a_confirmed_key_cannot_log_in(two_factor, boss, log_dir):
    pending = TOTPDevice.objects.create(user=boss, name="TOTP", confirmed=False)
    client, response = log_in(
        {"username": "boss", "password": PASSWORD, "otp_token": code(pending)}
    )
    assert response.status_code == 200 and GENERIC_ERROR in response.content.decode()
    assert SESSION_KEY not in client.session
    assert "no TOTP key enrolled (manage.py totp_enrol)" in log_text(log_dir)


def test_wrong_codes_count_towards_the_lockout(two_factor, boss):
    device = enrolled(boss)
    for _ in range(5):
        _, response = log_in({"username": "boss", "password": PASSWORD, "otp_token": "x"})
    assert response.status_code == 429
    client, response = log_in({"username": "boss", "password": PASSWORD, "otp_token": code(device)})
    assert response.status_code == 429 and SESSION_KEY not in client.session


def test_a_password_only_session_does_not_get_in(settings, boss):
    client = Client()
    client.force_login(boss)  # e.g. logged in before 2FA was turned on
    assert client.get("/admin/").status_code == 200
    settings.ADMIN_REQUIRE_2FA = True
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN_URL)


# --- enrolment ------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("totp_enrol", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_enrolment_prints_the_key_then_a_code_confirms_it(two_factor, boss, tmp_path):
    old = enrolled(boss)
    qr_file = tmp_path / "boss.svg"
    out = run("boss", "--qr", str(qr_file), "--no-input")
    device = TOTPDevice.objects.get(user=boss, confirmed=False)
    secret = device.config_url.split("secret=")[1].split("&")[0]
    assert "otpauth://totp/Top-up%20bot%20admin%3Aboss?secret=" in out
    assert secret in out
    assert "█" in out or "▀" in out  # the QR code in block characters
    assert "totp_enrol boss --code" in out
    assert qr_file.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert stat.S_IMODE(os.stat(qr_file).st_mode) == 0o600

    # not confirmed yet: the new key does not log in, the old one still does
    _, response = log_in({"username": "boss", "password": PASSWORD, "otp_token": code(device)})
    assert response.status_code == 200
    with pytest.raises(CommandError, match="not right"):
        run("boss", "--code", "x")
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed
    with pytest.raises(CommandError, match="wait"):  # throttled for a second after that
        run("boss", "--code", code(device))
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=10)
    )

    assert "Confirmed" in run("boss", "--code", code(device))
    assert list(TOTPDevice.objects.filter(user=boss)) == [device]  # the old key is gone
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    # the code that confirmed it is used up: the app's next one logs in
    client, response = log_in(
        {"username": "boss", "password": PASSWORD, "otp_token": code(device, steps_ahead=1)}
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert client.get("/admin/").status_code == 200


def test_enrolment_refuses_unknown_and_non_staff_users_and_removes_keys(two_factor, boss):
    User.objects.create_user("ivan", password=PASSWORD)
    with pytest.raises(CommandError, match="no user 'nobody'"):
        run("nobody")
    with pytest.raises(CommandError, match="'ivan' is not staff"):
        run("ivan")
    with pytest.raises(CommandError, match="no new key to confirm"):
        run("boss", "--code", "123456")
    enrolled(boss)
    assert "1 TOTP key(s) of boss removed" in run("boss", "--remove")
    assert not TOTPDevice.objects.filter(user=boss).exists()
