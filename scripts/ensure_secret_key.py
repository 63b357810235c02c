#!/usr/bin/env python
"""Makes sure `.env` gives the site a secret key: scripts/run.sh calls it before `migrate`.

When neither the environment nor the file sets BACKEND_SECRET_KEY, a random key made by
`secrets` is appended to the file (which is created, readable by its owner only, when
missing). An existing key is kept. The key is never printed.

    python scripts/ensure_secret_key.py [path/to/.env]   # default: the project's .env
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from dotenv import dotenv_values

NAME = "BACKEND_SECRET_KEY"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / ".env"


def ensure_secret_key(path: Path) -> bool:
    """Appends a new key to `path` unless a key is set; True when one was written."""
    if os.environ.get(NAME, "").strip():
        return False  # the real environment wins over .env anyway
    if path.exists() and (dotenv_values(path).get(NAME) or "").strip():
        return False
    ends_open = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
    # token_urlsafe: letters, digits, - and _ only, so .env needs no quotes around it.
    text = (
        ("\n" if ends_open else "")
        + "# Made by scripts/ensure_secret_key.py (run.sh): keep it secret, keep it stable.\n"
        + f"{NAME}={secrets.token_urlsafe(50)}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as env_file:
        env_file.write(text)
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    if ensure_secret_key(path):
        print(f"{NAME} was not set: a new random key is saved in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
