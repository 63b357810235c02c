#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import sys


def main() -> None:
    from backend.cli import main as run  # a missing database is one line, not a traceback

    run(sys.argv)


if __name__ == "__main__":
    main()
