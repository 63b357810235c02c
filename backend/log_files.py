"""The log files the admin's «Логи» page lists and serves: those in LOG_DIR.

Every process writes its own file there (backend/log_setup.py); this module only reads
the folder. A file is listed, and served, only if it is a regular file with a single
link (`is_single_file`): a symlink or a hard link put in LOG_DIR could name any file
of the project. The folder of name locks (`.locks/`) is a folder, so it is not listed.
"""

from __future__ import annotations

import os
import stat

from django.conf import settings


def is_single_file(info: os.stat_result) -> bool:
    """A regular file with one name only. A symlink is not one; nor is a hard link
    (`ln .env logs/x.log`): its other name may be anywhere, a secret of the project."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def log_files() -> list[tuple[str, os.stat_result]]:
    """Names and stats of the files in LOG_DIR (the current log and the rotated ones),
    newest first. Only files with a single link are listed (`is_single_file`): symlinks
    and hard links are left out; a file rotated away meanwhile is skipped."""
    found = []
    try:
        entries = list(os.scandir(settings.LOG_DIR))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if is_single_file(info):
            found.append((entry.name, info))
    return sorted(found, key=lambda item: item[1].st_mtime, reverse=True)
