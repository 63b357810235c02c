#!/usr/bin/env python
"""Runs the bot: the same as `python manage.py runbot`."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "runbot", *sys.argv[1:]])


if __name__ == "__main__":
    main()
