#!/usr/bin/env python
"""Runs the bot: the same as `python manage.py runbot`."""

import sys


def main() -> None:
    from backend.cli import main as run  # a missing database is one line, not a traceback

    run([sys.argv[0], "runbot", *sys.argv[1:]])


if __name__ == "__main__":
    main()
