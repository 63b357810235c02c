"""The test run's secrets and ids, shaped like the real thing, so the log redaction is
tested against real shapes. Fixtures (tests/conftest.py), helpers and tests take them
from here; the check that no file holds them runs at the end of the session
(`no_secret_written` in tests/conftest.py)."""

from tests.fakes import make_secret_key

TOKEN = "7012345678:AAHfakeTokenForTests_0123456789abcdef"
QIWI_KEY = make_secret_key()
PROVIDER_TOKEN = "381764678:TEST:5f0c2a9e71d4"  # a Telegram Payments provider token
ADMIN_ID = 900001
