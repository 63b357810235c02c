"""A copy of the project in a temporary folder, and what tests need to watch real
processes there: scripts/run.sh and gunicorn run in the copy, so they never touch the
project's own `.env`, `db.sqlite3`, `static/`, `logs/` or run.sh lock.

The copy's `.venv` is a folder of symlinks to the venv running the tests, with its own
fresh "installed" stamps: scripts/venv.sh finds the requirements installed and skips pip
(the requirements files keep their modification times, which are older).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
PARTS = (
    "backend",
    "locale",
    "scripts",
    "manage.py",
    "runbot.py",
    "requirements.txt",
    "requirements-dev.txt",
    "requirements-mysql.txt",
    ".env.example",
)
# Read by run.sh, gunicorn's config or the settings, yet not (all) in .env.example.
EXTRA_VARIABLES = (
    "ADMIN_ADDR",
    "ADMIN_WORKERS",
    "SECURE_COOKIES",
    "DATABASE_URL",
    "BACKEND_SECRET_KEY",
    "DEBUG",
    "GUNICORN_CMD_ARGS",
    "WEB_CONCURRENCY",
    "FORWARDED_ALLOW_IPS",
)
BANNER = re.compile(r"^Admin site: (http://[^/\s]+)/admin/", re.MULTILINE)


def copy_project(dest: Path) -> Path:
    """The project's code, scripts and requirements in `dest`, with a `.venv` that needs
    no install. No .env, no database: the test makes what it needs."""
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):
        pytest.skip("the tests do not run in a venv: run.sh needs one to link to")
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PARTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)  # copy2: times kept
        else:
            shutil.copy2(source, dest / name)
    (dest / ".venv").mkdir()
    for entry in venv.iterdir():
        if not entry.name.startswith(".installed-"):
            (dest / ".venv" / entry.name).symlink_to(entry)
    for requirements in ("requirements.txt", "requirements-dev.txt", "requirements-mysql.txt"):
        (dest / ".venv" / f".installed-{requirements}").touch()
    return dest


def clean_env(project: Path, **values: str) -> dict[str, str]:
    """The tests' environment without any variable the project reads (those of
    .env.example and a few more), so only `values` and the copy's .env count."""
    names = set(dotenv_values(project / ".env.example")) | set(EXTRA_VARIABLES)
    env = {name: value for name, value in os.environ.items() if name not in names}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env | {"PYTHONIOENCODING": "utf-8"} | values


def run_python(project: Path, *args: str, env: dict[str, str], timeout: float = 120) -> str:
    """`.venv/bin/python ARGS` in the copy; fails the test on a non-zero exit."""
    result = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Polls `condition` until it returns something true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return result


def admin_url(output: Path, process: subprocess.Popen, timeout: float = 90) -> str:
    """`http://host:port` from the «Admin site: …» banner gunicorn prints once it
    listens (the tests bind port 0: the system picks a free one)."""

    def banner() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before listening")
        found = BANNER.search(output.read_text(errors="replace"))
        return found and found.group(1)

    return wait_for(banner, timeout, "the admin server's banner")


# --- processes, read from /proc ---------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]  # the name may hold spaces
    return state, int(ppid)


def parent_pid(pid: int) -> int | None:
    stat = _stat(pid)
    return stat and stat[1]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to read its exit status."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX"


def descendants(pid: int) -> dict[int, str]:
    """Every living process below `pid`, with its command line."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] not in "ZX":
            parents.setdefault(stat[1], []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo.extend(parents.get(child, []))
    return found
