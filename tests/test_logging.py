"""Secrets never reach a log file: not in messages, not in tracebacks, not from the stdlib."""

import logging

from loguru import logger

from backend.logging import LOG_FILE_NAME
from tests.conftest import QIWI_KEY, TOKEN


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
