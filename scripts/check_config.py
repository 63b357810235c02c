#!/usr/bin/env python
"""scripts/run.sh's look at the configuration before it starts anything: the settings
(.env and the environment), Django's system checks (the secret key among them), what the
bot cannot start without, and the admin server's ADMIN_ADDR and ADMIN_WORKERS.

All well: prints `ADMIN_ADDR ADMIN_WORKERS` as its last line, exit status 0. Otherwise
the problems on stderr and exit status 1. Nothing is written to the database.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def problems() -> list[str]:
    import django
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as e:
        return [f"Configuration error: {e}"]
    from backend.checks import bot_settings_errors, system_check_errors

    errors = system_check_errors() + bot_settings_errors()
    if settings.ADMIN_WORKERS < 1:
        errors.append(f"ADMIN_WORKERS must be 1 or more, got {settings.ADMIN_WORKERS}")
    if not settings.ADMIN_ADDR or any(c.isspace() for c in settings.ADMIN_ADDR):
        errors.append(f"ADMIN_ADDR must be host:port, got {settings.ADMIN_ADDR!r}")
    return errors


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    if errors := problems():
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    from django.conf import settings

    print(settings.ADMIN_ADDR, settings.ADMIN_WORKERS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
