"""The admin site: Django's own, plus a TOTP code at the login when ADMIN_REQUIRE_2FA is on.

`AdminConfig` (in INSTALLED_APPS instead of "django.contrib.admin") makes `AdminSite` the
default site, so `admin.site`, `@admin.register` and every ModelAdmin stay as they were.
The setting is read on every request, not once: with it off the site is Django's
(login with a username and a password); with it on the login form also asks for the
code of the user's TOTP device (backend/two_factor.py) and only a session verified by
it counts as logged in to the admin. django-otp's `OTPAdminSite` does the same with a
fixed form; this one can switch, and its form needs no device to be chosen.

The site names the product (`ADMIN_SITE_TITLE`) in its header, the browser's title and
the index page, and mixes `backend.admin_names.NamedAdmin` into every ModelAdmin
registered with it (ours, Django's, django-otp's, django-axes'), so each model's titles,
counts and actions read right in Russian. `TOTPConfig` and `AxesConfig` give those two
apps (and the TOTP device, whose names django-otp does not translate) Russian names.
"""

from __future__ import annotations

from axes.apps import AppConfig as DjangoAxesConfig
from django.apps import AppConfig
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.http import HttpRequest
from django.utils.translation import gettext, gettext_lazy

from backend.admin_names import NamedAdmin


class AdminConfig(DjangoAdminConfig):
    default_site = "backend.admin_site.AdminSite"


class TOTPConfig(AppConfig):
    """django_otp.plugins.otp_totp under a name the owner reads."""

    name = "django_otp.plugins.otp_totp"
    label = "otp_totp"
    verbose_name = gettext_lazy("Two-factor login")
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # django-otp names its model in plain English strings, which no catalog can
        # translate; lazy ones are read through locale/ru. The migrations are built from
        # the model's Meta as written (`original_attrs`), so they see no change.
        model = self.get_model("TOTPDevice")
        model._meta.verbose_name = gettext_lazy("TOTP device")
        model._meta.verbose_name_plural = gettext_lazy("TOTP devices")


class AxesConfig(DjangoAxesConfig):
    """django-axes under a name the owner reads."""

    verbose_name = gettext_lazy("Login protection")


class AdminSite(admin.AdminSite):
    # No sidebar of every model beside each page: it took 300 of a 1366 px screen's width
    # from the lists. The index page and the breadcrumbs lead everywhere it did.
    enable_nav_sidebar = False

    @property
    def site_header(self) -> str:
        return settings.ADMIN_SITE_TITLE

    @property
    def site_title(self) -> str:
        return settings.ADMIN_SITE_TITLE

    @property
    def index_title(self) -> str:
        return gettext("%(name)s: administration") % {"name": settings.ADMIN_SITE_TITLE}

    def index(self, request: HttpRequest, extra_context: dict | None = None):
        """Django's index (the app list), with the dashboard above it for staff who may
        see it (backend/payments/dashboard_page.py; templates/admin/index.html)."""
        from backend.payments.dashboard_page import can_see_dashboard, dashboard_context

        extra_context = dict(extra_context or {})
        if can_see_dashboard(request.user):
            extra_context["dashboard"] = dashboard_context()
        return super().index(request, extra_context)

    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        """Registers `admin_class` with `NamedAdmin` mixed in (Django's ModelAdmin when
        none is given)."""
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, NamedAdmin):
            admin_class = type(
                admin_class.__name__,
                (NamedAdmin, admin_class),
                {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
            )
        super().register(model_or_iterable, admin_class, **options)

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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through their services (bills, ledger rows, a broadcast's
    deliveries): their pages show `fields`, all read-only; nothing is added or deleted."""

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
