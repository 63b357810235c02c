"""Sets up the processes' logging through loguru: stderr and rotating files, the stdlib
routed in, secrets redacted. (What the admin's «Логи» page lists: backend/log_files.py.)

Django calls `setup(LOGGING)` at start (settings.LOGGING_CONFIG). Every record passes
through `redact` (in `_patch`): the configured secrets and anything shaped like a bot
token or a bearer key are replaced before a sink sees them, in the message and in
tracebacks. Tracebacks are formatted without local variables (`diagnose` off): they
would print the token held by aiogram's Bot and pyqiwip2p's client.

Every record is one line, whoever wrote it and whatever values it carries (a reason
typed by an admin, a user's name, an exception's text): `_patch` escapes the control
characters of the message (`one_line`), so a value cannot start a line of its own that
passes for another record. A traceback is several lines by nature; each of its lines
is escaped the same way and indented by TRACEBACK_INDENT, so only a record's first line
starts at the first column (with its timestamp), and an exception message holding a
newline and a forged record shows up as an indented line of the traceback.

Every process writes a file of its own in LOG_DIR, named after its role
(`process_log_name`): the bot `bot.log`, the admin server `admin.log`, any other
`manage.py` command `manage.log`. A file is rotated (and its old copies deleted) only
by the process that writes it, so two writers never share one file: each process holds
a lock on its file's name (`LOG_DIR/.locks/<name>.lock`, flock, released when the
process ends), and a second process of the same role takes the next free name,
`admin-2.log` (e.g. the second worker of the admin server), `admin-3.log`, …. The bot's
webhook worker n (`runbot --worker n`) writes `bot-<n>.log`, and a worker that a process
forks calls `use_worker_log(n)` to do the same. loguru's retention deletes only the
rotated copies of the sink's own name (`bot.log` → `bot.<time>.log`; its patterns are
`bot.log`, `bot.log.*`, `bot.*.log`, `bot.*.log.*`), which is why the other names use
`-`: `bot-1.log`, `bot-1.<time>.log` and `admin.log` never match them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from loguru import logger

try:
    import fcntl
except ImportError:  # Windows: there every process writes its role's file, unlocked
    fcntl = None

LOG_FILE_NAME = "bot.log"  # the bot's file; `setup` without a "name" writes it
LOCK_DIR_NAME = ".locks"  # in LOG_DIR: a folder, so the «Логи» page does not list it
MAX_SAME_ROLE = 64  # admin.log … admin-64.log; past that, the process id names the file
MASK = "***"
AIOGRAM_EVENT_LOGGER = "aiogram.event"
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


def process_log_name(argv: list[str] | None = None, modules: Any = None) -> str:
    """The role that names this process's log file: `bot` for `runbot.py` and `manage.py
    runbot`, `bot-<n>` for its webhook worker n (`runbot --worker n`), `admin` for the
    admin server (`runserver`, gunicorn or any server that loaded backend/wsgi.py or
    asgi.py), `manage` for every other command (and the tests)."""
    argv = sys.argv if argv is None else argv
    modules = sys.modules if modules is None else modules
    program = argv[0] if argv else ""
    command = argv[1] if len(argv) > 1 else ""
    if Path(program).name == "runbot.py" or command == "runbot":
        worker = _option(argv, "--worker")
        return f"bot-{worker}" if worker and worker.isdigit() else "bot"
    if command == "runserver" or "gunicorn" in program or "uvicorn" in program:
        return "admin"
    if "backend.wsgi" in modules or "backend.asgi" in modules:
        return "admin"
    return "manage"


def _option(argv: list[str], name: str) -> str | None:
    """The value of `name N` or `name=N` in argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class _Current:
    """What `setup` was last called with, the file it chose and the lock on its name."""

    config: dict[str, Any] = {}
    file_name: str | None = None
    lock: IO[str] | None = None


def _release_name() -> None:
    """Closes this process's lock file; never unlocks it: a forked child shares the
    parent's lock, and an explicit unlock there would release the parent's name too.
    The lock goes when the last process holding it closes it (or ends)."""
    if _Current.lock is not None:
        with contextlib.suppress(OSError):
            _Current.lock.close()
    _Current.lock = None


def _claim_name(log_dir: Path, role: str) -> str:
    """The first of `role.log`, `role-2.log`, … that no living process holds."""
    if fcntl is None:
        return f"{role}.log"
    lock_dir = log_dir / LOCK_DIR_NAME
    lock_dir.mkdir(exist_ok=True)
    for n in range(1, MAX_SAME_ROLE + 1):
        name = f"{role}.log" if n == 1 else f"{role}-{n}.log"
        lock = open(lock_dir / f"{name}.lock", "a")  # noqa: SIM115  (held while we live)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        _Current.lock = lock
        return name
    return f"{role}-pid{os.getpid()}.log"


def _rotation(value: Any) -> Any:
    """`10 MB` (loguru's sizes), or a number of bytes."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def setup(config: dict[str, Any] | None) -> None:
    """Configure loguru; safe to call again (tests point it at another folder).

    `config`: level, dir (no file without it), secrets, name (the role: `bot` when not
    given), rotation (default `10 MB`) and retention (files kept, default 10)."""
    config = config or {}
    level = config.get("level", "INFO")
    _secrets[:] = sorted({s for s in config.get("secrets", []) if s and len(s) >= 6}, key=len)[::-1]

    logger.remove()  # closes the current file (rotation never runs on close)
    _release_name()
    _Current.config = dict(config)
    _Current.file_name = None
    logger.configure(patcher=_patch)
    options = {"format": _format, "backtrace": False, "diagnose": False, "level": level}
    logger.add(sys.stderr, **options)
    log_dir = config.get("dir")
    if log_dir:
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        _Current.file_name = _claim_name(log_dir, config.get("name") or "bot")
        logger.add(
            log_dir / _Current.file_name,
            rotation=_rotation(config.get("rotation") or "10 MB"),
            retention=int(config.get("retention") or 10),
            encoding="utf-8",
            enqueue=False,
            delay=True,  # the file appears with its first line: `check` makes none
            **options,
        )

    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
    for noisy in ("asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # aiogram says "Update id=… is handled. Duration … ms" at INFO for every update:
    # noise in the owner's logs, and on the bot's busiest path two sinks' worth of work.
    # Its errors stay; LOG_LEVEL=DEBUG shows the per-update lines again.
    logging.getLogger(AIOGRAM_EVENT_LOGGER).setLevel(
        logging.NOTSET if level == "DEBUG" else logging.WARNING
    )
    # django-axes says every step of every login, with the username and the address
    # masked; backend/security.py logs the failures and lockouts with both.
    logging.getLogger("axes").setLevel(logging.ERROR)


def current_log_file() -> str | None:
    """The name of this process's log file in LOG_DIR (None: no file)."""
    return _Current.file_name


def use_worker_log(worker: int, role: str | None = None) -> str | None:
    """In a worker process (after the fork): write `<role>-<worker>.log` from now on,
    e.g. `bot-2.log` for the bot's worker 2 (the role defaults to this process's). The
    file inherited from the parent is closed untouched, with its lock left to the parent.
    Returns the new file's name."""
    config = dict(_Current.config)
    base = role or config.get("name") or "bot"
    setup({**config, "name": f"{base}-{worker}"})
    return _Current.file_name
