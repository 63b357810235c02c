from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UsersConfig(AppConfig):
    name = "backend.users"
    label = "users"
    verbose_name = _("Users")

    def ready(self) -> None:
        # Registers the project's system checks: no start without a secret key (DEBUG off).
        from backend import checks  # noqa: F401
