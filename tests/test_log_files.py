"""Every process logs to a file of its own: the bot `bot.log`, the admin server
`admin.log`, other commands `manage.log`, a second process of a role `<role>-2.log`, a
worker `bot-<n>.log`. Real processes write at once with a tiny rotation size: no line
is lost or lands in another's file, and one's rotation and retention never touch the
other's files. The «Логи» page lists them all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.log_setup import process_log_name
from tests.helpers import ROOT, TEST_SECRET_KEY

WRITER = ROOT / "tests" / "log_writer.py"
LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \| \w+ +\| \S+ - (\S+) line (\d{5}) "
)
ROTATED = "2020-01-01_00-00-00_000000"


def test_the_role_comes_from_the_command_line():
    assert process_log_name(["runbot.py"], {}) == "bot"
    assert process_log_name(["/srv/app/runbot.py", "--x"], {}) == "bot"
    assert process_log_name(["manage.py", "runbot"], {}) == "bot"
    assert process_log_name(["/srv/manage.py", "runbot", "--worker", "2"], {}) == "bot-2"
    assert process_log_name(["manage.py", "runbot", "--worker=12"], {}) == "bot-12"
    assert process_log_name(["manage.py", "runserver", "0:8000"], {}) == "admin"
    assert process_log_name([".venv/bin/gunicorn", "-c", "x.py"], {}) == "admin"
    assert process_log_name(["/x/site-packages/gunicorn/__main__.py"], {}) == "admin"
    assert process_log_name(["any-wsgi-server"], {"backend.wsgi": object()}) == "admin"
    assert process_log_name(["manage.py", "migrate"], {}) == "manage"
    assert process_log_name(["manage.py", "export_users"], {}) == "manage"


class Writer:
    """A tests/log_writer.py process: started, its file name read, told to go."""

    def __init__(self, log_dir: Path, count: int, tag: str, argv: list[str], *extra: str, **env):
        environment = {
            **os.environ,
            "DEBUG": "false",
            "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
            "DATABASE_URL": f"sqlite:///{log_dir.parent}/unused.sqlite3",
            "LOG_DIR": str(log_dir),
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), str(count), tag, *extra, "--", *argv],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.file = self.process.stdout.readline().strip()  # it has claimed its name

    def go(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> list[str]:
        out, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0
        return out.split("\n")


def own_files(log_dir: Path, name: str) -> list[Path]:
    """`name` and its rotated copies (`bot.log` → `bot.<time>.log`)."""
    stem = name.removesuffix(".log")
    return [p for p in log_dir.iterdir() if p.name == name or re.fullmatch(
        re.escape(stem) + r"\.\d{4}-\d{2}-\d{2}_[\d_-]+\.log", p.name
    )]  # fmt: skip


def records(files: list[Path]) -> list[tuple[str, int]]:
    """(tag, number) of every record in the files; every line must be a whole record."""
    found = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = LINE.match(line)
            assert match, (path.name, line)
            found.append((match.group(1), int(match.group(2))))
    return found


def test_two_processes_write_at_once_each_to_its_own_file_and_lose_nothing(tmp_path):
    log_dir = tmp_path / "logs"
    settings = {"LOG_ROTATION": "2000", "LOG_RETENTION": "1000"}  # rotate often, keep all
    bot = Writer(log_dir, 400, "bot", ["runbot.py"], **settings)
    admin = Writer(log_dir, 400, "admin", ["manage.py", "runserver"], **settings)
    assert (bot.file, admin.file) == ("bot.log", "admin.log")
    bot.go()
    admin.go()
    bot.finish()
    admin.finish()

    bot_files, admin_files = own_files(log_dir, "bot.log"), own_files(log_dir, "admin.log")
    assert len(bot_files) > 10 and len(admin_files) > 10  # both rotated many times
    for files, tag in ((bot_files, "bot"), (admin_files, "admin")):
        found = records(files)
        assert {t for t, _ in found} == {tag}, tag  # none of the other's lines
        assert sorted(n for _, n in found) == list(range(400)), tag  # every line, once
        assert all(p.stat().st_size < 2000 + 300 for p in files)
    assert {p.name for p in log_dir.iterdir() if p.is_file()} == {
        p.name for p in bot_files + admin_files
    }


def test_retention_deletes_only_the_process_s_own_old_files(tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    others = {  # another process's files, current and rotated, that the bot must not touch
        "bot-1.log": "worker 1\n",
        f"bot-1.{ROTATED}.log": "worker 1, rotated\n",
        "bot-2.log": "a second bot\n",
        f"admin.{ROTATED}.log": "admin, rotated\n",
        "manage.log": "a command\n",
        "bots.log": "not ours either\n",
    }
    for name, text in others.items():
        (log_dir / name).write_text(text, encoding="utf-8")
    old_own = log_dir / f"bot.{ROTATED}.log"
    old_own.write_text("the bot's own old file\n", encoding="utf-8")
    os.utime(old_own, (0, 0))

    settings = {"LOG_ROTATION": "2000", "LOG_RETENTION": "2"}
    bot = Writer(log_dir, 400, "bot", ["manage.py", "runbot"], **settings)
    admin = Writer(log_dir, 8, "admin", ["manage.py", "runserver"], **settings)  # < 2000 B
    bot.go()
    admin.go()
    bot.finish()
    admin.finish()

    for name, text in others.items():
        assert (log_dir / name).read_text(encoding="utf-8") == text, name
    assert not old_own.exists()  # the bot's own oldest copies are deleted
    bot_files = own_files(log_dir, "bot.log")
    assert len(bot_files) == 3  # bot.log and the 2 newest rotated copies
    found = records(bot_files)
    assert {t for t, _ in found} == {"bot"} and max(n for _, n in found) == 399
    assert sorted(records([log_dir / "admin.log"])) == [("admin", n) for n in range(8)]


def test_a_second_process_of_a_role_takes_the_next_name(tmp_path):
    log_dir = tmp_path / "logs"
    first = Writer(log_dir, 3, "one", ["manage.py", "runserver"])
    second = Writer(log_dir, 3, "two", ["manage.py", "runserver"])
    command = Writer(log_dir, 3, "cmd", ["manage.py", "migrate"])
    assert (first.file, second.file, command.file) == ("admin.log", "admin-2.log", "manage.log")
    for writer in (first, second, command):
        writer.go()
        writer.finish()
    assert records([log_dir / "admin.log"]) == [("one", 0), ("one", 1), ("one", 2)]
    assert records([log_dir / "admin-2.log"]) == [("two", 0), ("two", 1), ("two", 2)]
    third = Writer(log_dir, 1, "three", ["manage.py", "runserver"])  # the first has ended
    assert third.file == "admin.log"
    third.go()
    third.finish()


def test_a_worker_switches_to_its_own_file(tmp_path):
    log_dir = tmp_path / "logs"
    settings = {"LOG_ROTATION": "2000", "LOG_RETENTION": "1000"}
    bot = Writer(log_dir, 200, "bot", ["runbot.py"], "--fork-worker", "3", **settings)
    bot.go()
    out = bot.finish()
    assert "worker bot-3.log" in out
    assert "parent held 0" in out  # the worker left the parent's name to the parent
    main, worker = records(own_files(log_dir, "bot.log")), records(own_files(log_dir, "bot-3.log"))
    assert sorted(main) == [("bot", n) for n in range(200)]
    assert sorted(worker) == [("bot-w3", n) for n in range(200)]


@pytest.mark.django_db
def test_the_logs_page_lists_every_process_s_files(settings, tmp_path):
    log_dir = tmp_path / "logs"
    bot = Writer(log_dir, 40, "bot", ["runbot.py"], LOG_ROTATION="2000")
    admin = Writer(log_dir, 5, "admin", ["manage.py", "runserver"])
    command = Writer(log_dir, 5, "cmd", ["manage.py", "migrate"])
    for writer in (bot, admin, command):
        writer.go()
        writer.finish()
    settings.LOG_DIR = log_dir
    names = {p.name for p in log_dir.iterdir() if p.is_file()}
    assert {"bot.log", "admin.log", "manage.log"} < names and len(names) > 3  # rotated too

    client = Client()
    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw-Boss-2024"))
    page = client.get("/admin/users/telegramuser/logs/")
    assert {f["name"] for f in page.context["files"]} == names  # not the .locks folder
    for name in names:
        assert client.get(f"/admin/users/telegramuser/logs/{name}/").status_code == 200


def test_the_admin_server_s_workers_each_write_their_own_file(tmp_path):
    """gunicorn as scripts/run.sh starts it, with two workers: each worker holds a name
    of its own (admin.log, admin-2.log), and every request's line is in one of them."""
    import signal
    import urllib.error
    import urllib.request

    log_dir = tmp_path / "logs"
    env = {
        **os.environ,
        "DEBUG": "false",
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path}/admin.sqlite3",
        "LOG_DIR": str(log_dir),
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "scripts/gunicorn.conf.py",
         "--bind", "127.0.0.1:0", "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        banner = ""
        while "Admin site:" not in banner:
            banner = server.stdout.readline()
            assert banner, "gunicorn ended before it listened"
        base = re.search(r"(http://[^/\s]+)/admin/", banner)[1]
        for n in range(20):
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(f"{base}/no-such-page-{n}/", timeout=10)
            assert answer.value.code == 404

        def held() -> list[str]:
            """The names whose lock a process holds now (read in /proc/locks, so that
            looking takes no lock a booting worker could run into)."""
            locks = Path("/proc/locks").read_text()
            names = []
            for name in ("admin.log", "admin-2.log"):
                path = log_dir / ".locks" / f"{name}.lock"
                if path.exists() and re.search(rf"FLOCK .*:{path.stat().st_ino} ", locks):
                    names.append(name)
            return names

        deadline = time.monotonic() + 30  # the workers boot after the banner
        while held() != ["admin.log", "admin-2.log"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert held() == ["admin.log", "admin-2.log"]  # each by a living worker
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)

    lines = [
        line
        for path in log_dir.glob("admin*.log")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    for n in range(20):
        assert sum(f"Not Found: /no-such-page-{n}/" in line for line in lines) == 1, n
    assert {p.name for p in log_dir.glob("*.log")} <= {"admin.log", "admin-2.log"}
