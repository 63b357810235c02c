"""TOTP two-factor login for the admin (django-otp), used when ADMIN_REQUIRE_2FA is on.

A staff user gets a TOTP key from the server's command line, `manage.py totp_enrol
<username>` (backend/users/management/commands/totp_enrol.py): it prints the otpauth://
URL and its QR code for an authenticator app, and the key counts once a code from the
app confirmed it. Why a command and not a page: a page would hand a new key to whoever
logs in with the password alone, so a stolen password would be enough to enrol the
thief's phone; the command needs the server, which is trusted anyway. One TOTP device
per user: a confirmed new key replaces the old one.

The login form asks for the username, the password and the code on one page. Every
failure gives the same message, whatever was wrong (a wrong password, a missing or
wrong code, no key enrolled), so the form does not tell a password guesser that the
password was right; the log says what it was, and each failure counts towards the
lockout (django-axes) like a wrong password.
"""

from __future__ import annotations

import io
import os

import segno
from django import forms
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice

DEVICE_NAME = "TOTP"
# django-otp's error codes → what the log says about the failure
FAILURE_REASONS = {
    "token_required": "no TOTP code",
    "invalid_token": "wrong TOTP code",
    "device_required": "no TOTP key enrolled (manage.py totp_enrol)",
}


class TOTPAdminAuthenticationForm(OTPAdminAuthenticationForm):
    """The admin's login with a TOTP code: the user's one confirmed TOTP device is used
    (no device list to choose from), a failure of the code is a failed login."""

    error_messages = {
        **OTPAdminAuthenticationForm.error_messages,
        "invalid_login": _(
            "Please enter the correct username, password and code from the "
            "authenticator app of a staff account. Note that the fields may be "
            "case-sensitive."
        ),
    }
    otp_token = forms.CharField(
        required=False,
        label=_("Code from the app"),
        max_length=16,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}
        ),
    )

    def clean(self):
        # AdminAuthenticationForm: the password (a failure is counted by authenticate)
        # and a staff account; then the code.
        cleaned = super(OTPAdminAuthenticationForm, self).clean()
        user = self.get_user()
        if user is None:  # no username or password given: the fields say so
            return cleaned
        try:
            self.clean_otp(user)
        except ValidationError as error:
            reason = FAILURE_REASONS.get(error.code or "", "TOTP check refused (throttled)")
            user_login_failed.send(
                sender=__name__,
                credentials={"username": user.get_username()},
                request=self.request,
                reason=reason,
            )
            raise self.get_invalid_login_error() from None
        return cleaned

    def _chosen_device(self, user):
        return confirmed_device(user)

    def _update_form(self, user):
        """django-otp would fill a device list and render the password back into the
        page for its second step; this form has one step."""


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).order_by("-pk").first()


def pending_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=False).order_by("-pk").first()


def enrol(user) -> TOTPDevice:
    """A new, unconfirmed key for `user` (replacing an earlier unconfirmed one); the
    confirmed key, if any, keeps working until the new one is confirmed."""
    with transaction.atomic():
        TOTPDevice.objects.devices_for_user(user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def confirm(device: TOTPDevice, code: str) -> bool:
    """True when `code` is the device's current code: the device is confirmed and the
    user's other TOTP devices are removed. A wrong code counts towards the device's
    throttling (django-otp doubles the wait after each failure)."""
    if not device.verify_token(code.strip()):
        return False
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
    return True


def remove(user) -> int:
    """Deletes every TOTP device of `user` (a lost phone): the number deleted."""
    count, _ = TOTPDevice.objects.filter(user=user).delete()
    return count


def qr_for_terminal(url: str) -> str:
    """The QR code of `url` drawn with block characters, for a terminal."""
    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def save_qr(url: str, path: str) -> None:
    """The QR code of `url` as an SVG or PNG file (by the name's ending), readable by its
    owner only: it holds the key."""
    kind = "png" if path.lower().endswith(".png") else "svg"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        segno.make(url, error="m").save(f, kind=kind, scale=6, border=4)
