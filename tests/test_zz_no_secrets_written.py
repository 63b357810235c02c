"""Runs last (by name): after every fault above, neither secret is in any file under the
project or the logs folder — logs, tracebacks, crash files a library dropped."""

import subprocess
from pathlib import Path

from tests.conftest import PROVIDER_TOKEN, QIWI_KEY, TOKEN
from tests.helpers import ROOT

SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".ruff_cache", ".pytest_cache"}


def written_files(folder: Path, tracked: frozenset[Path] = frozenset()):
    """Files in `folder` except our own sources (tests/conftest.py names the test token)."""
    for path in folder.rglob("*"):
        skipped = SKIP_DIRS.intersection(path.relative_to(folder).parts)
        if path.is_file() and path not in tracked and not skipped:
            yield path


def tracked_files() -> frozenset[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return frozenset(ROOT / name for name in listing.split("\0") if name)


def test_no_file_holds_the_token_or_a_payment_secret(log_dir):
    files = [*written_files(ROOT, tracked_files()), *written_files(log_dir)]
    assert any(p.name == "bot.log" for p in files)  # the logs were looked at
    leaks = [
        path
        for path in files
        for secret in (TOKEN, QIWI_KEY, PROVIDER_TOKEN)
        if secret.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert not list(ROOT.glob("QiwiCrash*"))
