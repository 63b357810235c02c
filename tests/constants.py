"""The test run's secrets and ids, shaped like the real thing, so the log redaction is
tested against real shapes. Fixtures (tests/conftest.py), helpers and tests take them
from here; the check that no file holds them runs at the end of the session
(`no_secret_written` in tests/conftest.py)."""

import base64

from tests.fakes import make_secret_key

TOKEN = "7012345678:AAHfakeTokenForTests_0123456789abcdef"
QIWI_KEY = make_secret_key()
PROVIDER_TOKEN = "381764678:TEST:5f0c2a9e71d4"  # a Telegram Payments provider token
# A YooKassa shop's id and secret key (the cabinet's «Интеграция — Ключи API»).
YOOKASSA_SHOP_ID = "318923"
YOOKASSA_KEY = "test_fAk3YooKassaKeyForTests-0123456789abcdefGHIJ"
# The Basic authorization the adapter sends: as secret as the key.
YOOKASSA_BASIC = base64.b64encode(f"{YOOKASSA_SHOP_ID}:{YOOKASSA_KEY}".encode()).decode()
ADMIN_ID = 900001
# What Telegram sends in X-Telegram-Bot-Api-Secret-Token to the `webhook` fixture's bot.
WEBHOOK_SECRET = "s3cret_-TOKEN"
