from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UsersAppConfig(AppConfig):
    name = "backend.users"
    label = "users"
    verbose_name = _("Users")

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed
        from django.db.backends.signals import connection_created

        # Registers the project's system checks: no start without a secret key (DEBUG off).
        from backend import checks  # noqa: F401
        from backend.common.casefold import register_sqlite_casefold
        from backend.security import log_failed_login, log_lockout

        # Failed logins to the admin: a WARNING with the username tried and the address.
        user_login_failed.connect(log_failed_login, dispatch_uid="backend.log_failed_login")
        # Lockouts after ADMIN_LOCKOUT_FAILURES failures (django-axes): a WARNING too.
        user_locked_out.connect(log_lockout, dispatch_uid="backend.log_lockout")
        # The users search ignores case in Cyrillic on SQLite too (backend/common/casefold.py).
        connection_created.connect(register_sqlite_casefold, dispatch_uid="backend.casefold")
