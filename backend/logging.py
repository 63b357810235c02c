"""Logging through loguru: stderr and rotating files, the stdlib routed in, secrets redacted.

Django calls `setup(LOGGING)` at start (settings.LOGGING_CONFIG). Every record passes
through `_redact`: the configured secrets and anything shaped like a bot token or a
bearer key are replaced before a sink sees them, in the message and in tracebacks.
Tracebacks are formatted without local variables (`diagnose` off): they would print
the token held by aiogram's Bot and pyqiwip2p's client.
"""

from __future__ import annotations

import logging
import os
import re
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


def _patch(record: dict[str, Any]) -> None:
    record["message"] = redact(record["message"])
    exc = record["exception"]
    if exc is not None and exc.type is not None:
        text = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
        record["extra"]["exc_text"] = redact(text)


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


def log_files() -> list[tuple[str, os.stat_result]]:
    """Names and stats of the files in LOG_DIR (the current log and the rotated ones),
    newest first. Links are left out; a file rotated away meanwhile is skipped."""
    from django.conf import settings

    found = []
    try:
        entries = list(os.scandir(settings.LOG_DIR))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                found.append((entry.name, entry.stat(follow_symlinks=False)))
        except FileNotFoundError:
            continue
    return sorted(found, key=lambda item: item[1].st_mtime, reverse=True)
