"""`manage.py totp_enrol <username>`: a TOTP key for a staff user's authenticator app.

    totp_enrol alice                  # new key: the otpauth:// URL and its QR code; on a
                                      # terminal it then asks for a code from the app
    totp_enrol alice --code 123456    # confirms the new key with a code from the app
    totp_enrol alice --qr alice.svg   # the QR code also as a file (.svg or .png, mode 0600)
    totp_enrol alice --remove         # deletes alice's keys (a lost phone)

The key counts for the login (ADMIN_REQUIRE_2FA=true) only once a code confirmed it;
until then alice's old key, if any, keeps working. See backend/two_factor.py.
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from loguru import logger

from backend import two_factor

CONFIRM_TRIES = 3


class Command(BaseCommand):
    help = "Gives a staff user a TOTP key for two-factor login to the admin (ADMIN_REQUIRE_2FA)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--code", help="confirm the new key with this code from the app")
        parser.add_argument("--qr", metavar="FILE", help="also write the QR code to FILE")
        parser.add_argument("--remove", action="store_true", help="delete the user's keys")
        parser.add_argument(
            "--no-input", action="store_true", help="do not ask for a code, even on a terminal"
        )

    def handle(self, *args, username: str, code, qr, remove, no_input, **options) -> None:
        user = self._user(username)
        if remove:
            count = two_factor.remove(user)
            logger.info("TOTP keys of {!r} removed: {}", username, count)
            self.stdout.write(f"{count} TOTP key(s) of {username} removed.")
            return
        if code is not None:
            self._confirm_pending(user, code)
            return

        device = two_factor.enrol(user)
        url = device.config_url
        logger.info("new TOTP key made for {!r} (not confirmed yet)", username)
        self.stdout.write(
            f"A new TOTP key for {username}. Add it to an authenticator app: scan the QR "
            f"code, or enter this URL (it holds the key; keep it secret):\n\n{url}\n"
        )
        self.stdout.write(two_factor.qr_for_terminal(url))
        if qr:
            two_factor.save_qr(url, qr)
            self.stdout.write(f"The QR code is also in {qr} (delete it once scanned).")
        if not no_input and sys.stdin.isatty():
            for _ in range(CONFIRM_TRIES):
                answer = input("The code the app shows now (Enter to confirm later): ")
                if not answer.strip():
                    break
                if two_factor.confirm(device, answer):
                    self._confirmed(username)
                    return
                self.stderr.write("That code is not right; try the current one.")
        self.stdout.write(
            "The key counts once confirmed: "
            f"python manage.py totp_enrol {username} --code <the code the app shows>"
        )

    def _user(self, username: str):
        model = get_user_model()
        try:
            user = model._default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            raise CommandError(f"no user {username!r}") from None
        if not user.is_staff:
            raise CommandError(f"{username!r} is not staff: only staff log in to the admin")
        return user

    def _confirm_pending(self, user, code: str) -> None:
        username = user.get_username()
        device = two_factor.pending_device(user)
        if device is None:
            raise CommandError(
                f"{username!r} has no new key to confirm: run totp_enrol {username} first"
            )
        allowed, _ = device.verify_is_allowed()
        if not allowed:  # django-otp's throttling: the wait doubles with each wrong code
            raise CommandError("too many wrong codes in a row: wait a few seconds, try again")
        if not two_factor.confirm(device, code):
            raise CommandError("the code is not right: enter the one the app shows now")
        self._confirmed(username)

    def _confirmed(self, username: str) -> None:
        logger.info("TOTP key of {!r} confirmed", username)
        self.stdout.write(f"Confirmed: {username} logs in with a code from the app from now on.")
