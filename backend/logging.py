"""Logging through loguru: stderr and rotating files, the stdlib routed in, secrets redacted.

Django calls `setup(LOGGING)` at start (settings.LOGGING_CONFIG). Every record passes
through `_redact`: the configured secrets and anything shaped like a bot token or a
bearer key are replaced before a sink sees them, in the message and in tracebacks.
Tracebacks are formatted without local variables (`diagnose` off): they would print
the token held by aiogram's Bot and pyqiwip2p's client.

Every record is one line, whoever wrote it and whatever values it carries (a reason
typed by an admin, a user's name, an exception's text): `_patch` escapes the control
characters of the message (`one_line`), so a value cannot start a line of its own that
passes for another record. A traceback is several lines by nature; each of its lines
is escaped the same way and indented by TRACEBACK_INDENT, so only a record's first line
starts at the first column (with its timestamp), and an exception message holding a
newline and a forged record shows up as an indented line of the traceback.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import traceback
from pathlib import Path
from typing import Any

from loguru import logger

LOG_FILE_NAME = "bot.log"
MASK = "***"
_TOKEN_SHAPES = [
    re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b"),  # Telegram bot token
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),  # Authorization header
]
_secrets: list[str] = []


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, MASK)
    text = _TOKEN_SHAPES[0].sub(MASK, text)
    return _TOKEN_SHAPES[1].sub(r"\1" + MASK, text)


# C0 controls (with \n, \r, \t), DEL, C1 controls (with NEL, U+0085) and the Unicode line
# and paragraph separators: all that could break a line or move the cursor of a terminal.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
TRACEBACK_INDENT = "  "


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED_CONTROLS:
        return _NAMED_CONTROLS[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """`text` on one line: a newline shows as the two characters `\\n` (also `\\r`, `\\t`),
    the other controls and U+2028/U+2029 as `\\xNN` / `\\uNNNN`. A backslash typed as such
    is kept as it is: the text stays readable, and a line break cannot be forged with it."""
    return _CONTROLS.sub(_escape_control, text)


def _traceback_text(text: str) -> str:
    """Each line of a traceback escaped and indented: none starts at the first column."""
    lines = text.removesuffix("\n").split("\n")
    return "".join(f"{TRACEBACK_INDENT}{one_line(line)}\n" for line in lines)


def _patch(record: dict[str, Any]) -> None:
    # Redacted before it is escaped: an escape in front of a token would hide its start.
    record["message"] = one_line(redact(record["message"]))
    exc = record["exception"]
    if exc is not None and exc.type is not None:
        text = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
        record["extra"]["exc_text"] = _traceback_text(redact(text))


def _format(record: dict[str, Any]) -> str:
    line = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{line} - {message}\n"
    if "exc_text" in record["extra"]:
        line += "{extra[exc_text]}"
    return line


class InterceptHandler(logging.Handler):
    """Sends records of the standard `logging` (Django, aiogram, httpx) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        exc_info = record.exc_info
        logger.patch(lambda r: r.update(name=record.name, line=record.lineno)).opt(
            exception=exc_info
        ).log(level, record.getMessage())


def setup(config: dict[str, Any] | None) -> None:
    """Configure loguru; safe to call again (tests point it at another folder)."""
    config = config or {}
    level = config.get("level", "INFO")
    _secrets[:] = sorted({s for s in config.get("secrets", []) if s and len(s) >= 6}, key=len)[::-1]

    logger.remove()
    logger.configure(patcher=_patch)
    options = {"format": _format, "backtrace": False, "diagnose": False, "level": level}
    logger.add(sys.stderr, **options)
    log_dir = config.get("dir")
    if log_dir:
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        logger.add(
            log_dir / LOG_FILE_NAME,
            rotation="10 MB",
            retention=10,
            encoding="utf-8",
            enqueue=False,
            **options,
        )

    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
    for noisy in ("asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def is_single_file(info: os.stat_result) -> bool:
    """A regular file with one name only. A symlink is not one; nor is a hard link
    (`ln .env logs/x.log`): its other name may be anywhere, a secret of the project."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def log_files() -> list[tuple[str, os.stat_result]]:
    """Names and stats of the files in LOG_DIR (the current log and the rotated ones),
    newest first. Only files with a single link are listed (`is_single_file`): symlinks
    and hard links are left out; a file rotated away meanwhile is skipped."""
    from django.conf import settings

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
