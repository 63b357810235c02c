"""Secrets never reach a log file: not in messages, not in tracebacks, not from the stdlib.
Every record is one line: a value with newlines and other controls cannot forge another."""

import logging
import re

from django.contrib.auth.models import User
from django.test import Client
from loguru import logger

from backend.log_setup import LOG_FILE_NAME
from backend.payments.models import LedgerEntry
from backend.users.models import TelegramUser
from tests.constants import QIWI_KEY, TOKEN


def read_log(log_dir) -> str:
    logger.complete()
    return (log_dir / LOG_FILE_NAME).read_text(encoding="utf-8")


def test_secrets_are_redacted_in_messages_tracebacks_and_stdlib_records(log_dir):
    logger.info("calling https://api.telegram.org/bot{}/getMe", TOKEN)
    logging.getLogger("httpx").warning("headers: Authorization: Bearer %s", QIWI_KEY)
    try:
        raise RuntimeError(f"request to /bot{TOKEN}/sendMessage failed with key {QIWI_KEY}")
    except RuntimeError:
        logger.exception("send failed")
    other_token = "5550001112:AAE-some-other-token-shaped-string-xyz"
    logger.warning("unknown token {}", other_token)

    log = read_log(log_dir)
    assert "calling https://api.telegram.org/bot***/getMe" in log
    assert "Authorization: Bearer ***" in log
    assert "RuntimeError: request to /bot***/sendMessage failed with key ***" in log
    for secret in (TOKEN, QIWI_KEY, other_token):
        assert secret not in log


def test_traceback_shows_no_local_variables(log_dir):
    def handler():
        api_key = "local-secret-value-123"  # noqa: F841  (diagnose would print it)
        raise ValueError("boom")

    try:
        handler()
    except ValueError:
        logger.exception("handler failed")
    log = read_log(log_dir)
    assert "ValueError: boom" in log
    assert "local-secret-value-123" not in log


# --- one record, one line -------------------------------------------------------------

RECORD_START = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \| [A-Z]+ +\| ")
FORGED = (
    "\n2026-11-28 10:30:00.000 | INFO     | backend.payments.services:340 - "
    "balance of user 1001 adjusted by -10.00 (FORGED): 0.00 by boss"
)
# Every other character that splits a line for str.splitlines, a terminal or an editor.
CONTROLS = "\r\x0b\x0c\x1b[2K\x1c\x1d\x1e\x85\u2028\u2029\x7f\x00\tend"
ESCAPED_CONTROLS = "\\r\\x0b\\x0c\\x1b[2K\\x1c\\x1d\\x1e\\x85\\u2028\\u2029\\x7f\\x00\\tend"


def log_size(log_dir) -> int:
    logger.complete()
    path = log_dir / LOG_FILE_NAME
    return path.stat().st_size if path.exists() else 0


def lines_since(log_dir, offset: int) -> list[str]:
    """The lines written since `offset`, split wherever Python, an editor or a terminal
    would start a new line (str.splitlines knows them all)."""
    logger.complete()
    with (log_dir / LOG_FILE_NAME).open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8").splitlines()


def test_a_value_with_newlines_and_controls_is_logged_on_one_line(log_dir):
    name = "Ivan" + FORGED + CONTROLS
    start = log_size(log_dir)
    logger.info("greeted user {} with key {}", name, f"\n{TOKEN}")  # as the bot would
    logging.getLogger("aiogram.event").warning("update from %s", name)  # through the stdlib

    lines = lines_since(log_dir, start)
    assert len(lines) == 2
    assert all(RECORD_START.match(line) for line in lines), lines
    assert lines[0].endswith(
        " - greeted user Ivan\\n2026-11-28 10:30:00.000 | INFO     | backend.payments.services"
        ":340 - balance of user 1001 adjusted by -10.00 (FORGED): 0.00 by boss"
        + ESCAPED_CONTROLS
        + " with key \\n***"
    )
    assert "| aiogram.event:" in lines[1] and lines[1].endswith(ESCAPED_CONTROLS)
    assert TOKEN not in "\n".join(lines)


def test_no_line_of_a_traceback_passes_for_a_record(log_dir):
    start = log_size(log_dir)
    try:
        raise RuntimeError(f"bad name Ivan{FORGED}{CONTROLS} key {QIWI_KEY}")
    except RuntimeError:
        logger.exception("update {} failed", 7)
        logging.getLogger("aiogram.dispatcher").exception("update %s failed", 8)

    lines = lines_since(log_dir, start)
    starts = [i for i, line in enumerate(lines) if RECORD_START.match(line)]
    assert [lines[i].split(" - ")[-1] for i in starts] == ["update 7 failed", "update 8 failed"]
    assert starts[0] == 0
    for i, line in enumerate(lines):
        assert i in starts or line.startswith("  "), line  # the rest is the tracebacks
    text = "\n".join(lines)
    assert text.count("  Traceback (most recent call last):") == 2
    assert text.count("  RuntimeError: bad name Ivan\n  2026-11-28 10:30:00.000 | INFO") == 2
    assert text.count(f"(FORGED): 0.00 by boss{ESCAPED_CONTROLS} key ***") == 2
    assert QIWI_KEY not in text


def test_an_admins_reason_with_a_forged_line_is_logged_on_one_line(db, log_dir):
    ivan = TelegramUser.objects.create(telegram_id=1001, first_name="Иван")
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    url = f"/admin/users/telegramuser/{ivan.pk}/adjust/"
    key = client.get(url).context["form"]["key"].value()
    reason = "компенсация" + FORGED + "\r\n\u2028\x1b[2Kконец"

    start = log_size(log_dir)
    response = client.post(url, {"amount": "10", "reason": reason, "seen_balance": "0", "key": key})
    assert response.status_code == 302
    assert LedgerEntry.objects.get(user=ivan).reason == reason  # kept as typed

    lines = [line for line in lines_since(log_dir, start) if "adjusted by" in line]
    assert lines == [
        lines[0].split(" - ")[0]
        + " - balance of user 1001 adjusted by 10.00 (компенсация\\n2026-11-28 10:30:00.000 | "
        "INFO     | backend.payments.services:340 - balance of user 1001 adjusted by -10.00 "
        "(FORGED): 0.00 by boss\\r\\n\\u2028\\x1b[2Kконец): 10.00 by boss"
    ]
    assert RECORD_START.match(lines[0])


def test_aiogram_says_each_update_only_at_debug(tmp_path, log_dir):
    """aiogram's "Update id=… is handled" line, one per update, is left out at INFO (the
    default) and WARNING; its warnings and errors are not, and DEBUG shows it all."""
    from backend import log_setup

    event = logging.getLogger("aiogram.event")
    try:
        for level, expected in (
            ("INFO", ["the update failed"]),
            ("WARNING", ["the update failed"]),
            ("DEBUG", ["Update id=7 is handled", "the update failed"]),
        ):
            folder = tmp_path / level
            log_setup.setup({"level": level, "dir": folder, "name": "bot"})
            event.info("Update id=%s is %s", 7, "handled")
            event.warning("the update failed")
            logger.complete()
            lines = (folder / LOG_FILE_NAME).read_text().splitlines()
            assert [line.split(" - ", 1)[1] for line in lines] == expected, level
    finally:  # back to the test run's logging (conftest's log_dir)
        log_setup.setup({"level": "DEBUG", "dir": log_dir, "secrets": [TOKEN, QIWI_KEY]})
