#!/usr/bin/env python
"""Makes sure `.env` gives the site a secret key: scripts/run.sh calls it before `migrate`.

When neither the environment nor the file sets BACKEND_SECRET_KEY, a random key made by
`secrets` is written into the file: into its empty `BACKEND_SECRET_KEY=` line (the one a
copy of .env.example has), or appended when it has none; the file is created when missing.
The file is left readable by its owner only. An existing key is kept. The key is never
printed.

    python scripts/ensure_secret_key.py [path/to/.env]   # default: the project's .env
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path

from dotenv import dotenv_values

NAME = "BACKEND_SECRET_KEY"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / ".env"


# A line that assigns the key, as python-dotenv reads it (`export ` and spaces allowed).
ASSIGNMENT = re.compile(rb"^[ \t]*(?:export[ \t]+)?" + NAME.encode() + rb"[ \t]*=")


def ensure_secret_key(path: Path) -> bool:
    """Writes a new key into `path` unless a key is set; True when one was written."""
    if os.environ.get(NAME, "").strip():
        return False  # the real environment wins over .env anyway
    if path.exists() and (dotenv_values(path).get(NAME) or "").strip():
        return False
    # token_urlsafe: letters, digits, - and _ only, so .env needs no quotes around it.
    line = f"{NAME}={secrets.token_urlsafe(50)}\n".encode()
    lines = path.read_bytes().splitlines(keepends=True) if path.exists() else []
    assignments = [i for i, text in enumerate(lines) if ASSIGNMENT.match(text)]
    if assignments:
        # The last assignment is the one python-dotenv takes, and it is empty: fill it.
        lines[assignments[-1]] = line
        _replace(path, b"".join(lines))
        return True
    ends_open = lines and not lines[-1].endswith(b"\n")
    text = (
        (b"\n" if ends_open else b"")
        + b"# Made by scripts/ensure_secret_key.py (run.sh): keep it secret, keep it stable.\n"
        + line
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as env_file:
        os.fchmod(env_file.fileno(), 0o600)  # an existing file may be readable by all
        env_file.write(text)
    return True


def _replace(path: Path, data: bytes) -> None:
    """Puts `data` in place of the file at once (a crash leaves the old or the new file),
    readable by its owner only, with the old file's owner; a symlinked .env keeps its link."""
    target = path.resolve()
    old = target.stat()
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".env-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as new_file:  # mkstemp makes it 0600
            with contextlib.suppress(OSError):  # e.g. sudo run.sh on the user's file
                os.fchown(new_file.fileno(), old.st_uid, old.st_gid)
            new_file.write(data)
            new_file.flush()
            os.fsync(new_file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    if ensure_secret_key(path):
        print(f"{NAME} was not set: a new random key is saved in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
