"""The admin site: Django's own, plus a TOTP code at the login when ADMIN_REQUIRE_2FA is on.

`AdminConfig` (in INSTALLED_APPS instead of "django.contrib.admin") makes `AdminSite` the
default site, so `admin.site`, `@admin.register` and every ModelAdmin stay as they were.
The setting is read on every request, not once: with it off the site is Django's
(login with a username and a password); with it on the login form also asks for the
code of the user's TOTP device (backend/two_factor.py) and only a session verified by
it counts as logged in to the admin. django-otp's `OTPAdminSite` does the same with a
fixed form; this one can switch, and its form needs no device to be chosen.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.http import HttpRequest


class AdminConfig(DjangoAdminConfig):
    default_site = "backend.admin_site.AdminSite"


class AdminSite(admin.AdminSite):
    @property
    def login_form(self):
        if settings.ADMIN_REQUIRE_2FA:
            from backend.two_factor import TOTPAdminAuthenticationForm  # needs the models

            return TOTPAdminAuthenticationForm
        return None  # Django's AdminAuthenticationForm

    @property
    def login_template(self) -> str | None:
        return "admin/login_2fa.html" if settings.ADMIN_REQUIRE_2FA else None

    def has_permission(self, request: HttpRequest) -> bool:
        """Django's rule (an active staff user), and with 2FA on a session verified by a
        TOTP code: a session logged in before 2FA was turned on has to log in again."""
        if not super().has_permission(request):
            return False
        if settings.ADMIN_REQUIRE_2FA:
            is_verified = getattr(request.user, "is_verified", None)  # OTPMiddleware's
            return bool(is_verified and is_verified())
        return True
