"""`scripts/run.sh` as a newcomer runs it, in a copy of the project (tests/project_copy.py)
with the bot against the fake Telegram and QIWI: it serves the admin and runs the bot,
fills the empty key of a copied .env.example and makes the file private, refuses a
second copy (also beside the servers of a killed one), stops everything it started on
SIGTERM, Ctrl-C or a closed terminal (exit status 0), stops the rest when one server dies
(1), and starts nothing on a configuration error (1)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from dotenv import dotenv_values

from tests.constants import QIWI_KEY, TOKEN
from tests.project_copy import (
    BANNER,
    alive,
    clean_env,
    copy_project,
    descendants,
    parent_pid,
)

READY_TIMEOUT = 120  # venv check, migrations, collectstatic, gunicorn, importing aiogram
STOP_TIMEOUT = 60


class Run:
    """One `scripts/run.sh`, started from another folder, its output in files."""

    def __init__(self, project: Path, env: dict[str, str], folder: Path) -> None:
        self.project, self.env = project, env
        folder.mkdir(parents=True, exist_ok=True)
        self.stdout, self.stderr = folder / "stdout.txt", folder / "stderr.txt"
        self.process: asyncio.subprocess.Process | None = None
        self.seen: dict[int, str] = {}  # the processes it started, once they were up

    async def start(self, runs: list[Run], *, new_session: bool = False) -> Run:
        runs.append(self)
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = await asyncio.create_subprocess_exec(
                str(self.project / "scripts" / "run.sh"),
                cwd=self.project.parent,  # run.sh finds the project by its own place
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=new_session,
            )
        return self

    def output(self) -> tuple[str, str]:
        return self.stdout.read_text(errors="replace"), self.stderr.read_text(errors="replace")

    async def until(self, check, what: str, timeout: float = READY_TIMEOUT, *, running=True):
        """Polls `check` until it returns something true; fails after `timeout`, or
        (`running`) as soon as run.sh has ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := check()):
            if running and self.process.returncode is not None:
                raise AssertionError(f"run.sh exited with {self.process.returncode}: {self}")
            if loop.time() > deadline:
                raise AssertionError(f"no {what} after {timeout}s: {self}")
            await asyncio.sleep(0.05)
        return result

    async def ready(self, tg) -> tuple[str, int, dict[int, str]]:
        """Waits until the admin listens with its two workers and the bot polls; returns
        the admin's host and port and the processes run.sh started."""
        found = await self.until(lambda: BANNER.search(self.output()[0]), "banner")
        address = urlsplit(found.group(1))
        await tg.wait_call("getUpdates", timeout=READY_TIMEOUT)

        def started() -> dict[int, str] | None:
            below = descendants(self.process.pid)
            gunicorns = [cmd for cmd in below.values() if "-m gunicorn" in cmd]
            bots = [cmd for cmd in below.values() if "runbot.py" in cmd]
            return below if (len(gunicorns), len(bots)) == (3, 1) else None

        self.seen = await self.until(started, "master+2 workers+bot")
        return address.hostname, address.port, self.seen

    async def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    def __repr__(self) -> str:
        out, err = self.output()
        return f"\n--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-5000:]}"


def project_env(project: Path, tg=None, qiwi=None, **values: str) -> dict[str, str]:
    """Settings through the environment (the copy's .env is the untouched example);
    the admin on a port the system picks."""
    fakes = {}
    if tg is not None:
        fakes = {
            "TELEGRAM_API_TOKEN": TOKEN,
            "TELEGRAM_API_SERVER": tg.base_url,
            "QIWI_SECRET_KEY": QIWI_KEY,
            "QIWI_API_URL": qiwi.base_url,
        }
    return clean_env(project, ADMIN_ADDR="127.0.0.1:0", ADMIN_WORKERS="2", **fakes) | values


@pytest.fixture
async def runs():
    """Every Run of a test; a failed test still leaves no process behind."""
    started: list[Run] = []
    yield started
    for run in started:
        if run.process is None:
            continue
        below = run.seen | descendants(run.process.pid)
        if run.process.returncode is None:
            run.process.send_signal(signal.SIGTERM)
            try:
                await run.wait()
            except TimeoutError:
                run.process.kill()
                await run.process.wait()
        for pid in below:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project with `cp .env.example .env` done, as the README says."""
    copy = copy_project(tmp_path / "project")
    shutil.copyfile(copy / ".env.example", copy / ".env")
    (copy / ".env").chmod(0o644)
    return copy


async def admin_login_status(host: str, port: int) -> bytes:
    """The status line of the admin's login page, asked over a plain socket."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /admin/login/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    line = await reader.readline()
    writer.close()
    return line


def refuses_connections(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_all_gone(processes: dict[int, str], host: str, port: int) -> None:
    assert not [cmd for pid, cmd in processes.items() if alive(pid)]
    assert refuses_connections(host, port)


async def test_run_sh_serves_both_and_stops_everything_on_sigterm(
    project, tg, qiwi, tmp_path, runs
):
    run = await Run(project, project_env(project, tg, qiwi), tmp_path).start(runs)
    try:
        host, port, started = await run.ready(tg)
        assert (await admin_login_status(host, port)).startswith(b"HTTP/1.1 200 ")
    finally:
        run.process.send_signal(signal.SIGTERM)
    assert await run.wait() == 0, run
    assert_all_gone(started, host, port)
    out, err = run.output()
    assert len(BANNER.findall(out)) == 1
    assert "bot stopped" in err, err[-4000:]  # the whole end, to see why if it ever fails


@pytest.fixture
def server_database():
    """A new, empty database on the server of this run — MySQL in the MySQL run,
    PostgreSQL otherwise — made as the README says; its DATABASE_URL. Dropped after."""
    name = f"topup_run_{secrets.token_hex(4)}"
    if connection.vendor == "mysql":
        command = ["mysql", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"]
        subprocess.run(
            [*command, f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"],
            check=True,
        )
        yield f"mysql://root@127.0.0.1:3306/{name}"
        subprocess.run([*command, f"DROP DATABASE {name}"], check=True)
    else:
        psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
        subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True)
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True)


async def test_run_sh_on_a_database_server(project, tg, qiwi, tmp_path, runs, server_database):
    """The README's MySQL (or PostgreSQL) setup: DATABASE_URL in .env, then run.sh."""
    with (project / ".env").open("a") as env_file:
        env_file.write(f"DATABASE_URL={server_database}\n")
    env = project_env(project, tg, qiwi)
    run = await Run(project, env, tmp_path).start(runs)
    try:
        host, port, _ = await run.ready(tg)
        user = tg.user(4711)
        tg.send_text(user, "/start")
        assert (await tg.wait_call("sendMessage")).params["chat_id"] == 4711
        assert (await admin_login_status(host, port)).startswith(b"HTTP/1.1 200 ")
    finally:
        run.process.send_signal(signal.SIGTERM)
    assert await run.wait() == 0, run
    assert not (project / "db.sqlite3").exists()  # the server's database, not the file


async def test_the_env_file_is_private_and_its_empty_key_line_is_filled(
    project, tg, qiwi, tmp_path, runs
):
    example = (project / ".env.example").read_text().splitlines()
    run = await Run(project, project_env(project, tg, qiwi), tmp_path).start(runs)
    try:
        await run.ready(tg)
    finally:
        run.process.send_signal(signal.SIGTERM)
        assert await run.wait() == 0, run
    env_file = project / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    lines = env_file.read_text().splitlines()
    key_lines = [n for n, line in enumerate(lines) if line.startswith("BACKEND_SECRET_KEY")]
    assert key_lines == [example.index("BACKEND_SECRET_KEY=")]  # the same line, once
    key = dotenv_values(env_file)["BACKEND_SECRET_KEY"]
    assert len(key) >= 50 and len(set(key)) >= 5
    assert lines[: key_lines[0]] + lines[key_lines[0] + 1 :] == [
        line for line in example if line != "BACKEND_SECRET_KEY="
    ]  # nothing else changed
    out, err = run.output()
    assert key not in out + err

    # The next start keeps the key, and the file private even if someone opened it up.
    env_file.chmod(0o644)
    again = await Run(project, project_env(project, tg, qiwi), tmp_path / "again").start(runs)
    try:
        await again.ready(tg)
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert await again.wait() == 0, again
    assert dotenv_values(env_file)["BACKEND_SECRET_KEY"] == key
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


async def test_a_second_run_sh_is_refused_with_one_line(project, tg, qiwi, tmp_path, runs):
    first = await Run(project, project_env(project, tg, qiwi), tmp_path).start(runs)
    try:
        host, port, started = await first.ready(tg)
        second = await Run(project, project_env(project, tg, qiwi), tmp_path / "second").start(runs)
        assert await second.wait(timeout=30) == 1, second
        out, err = second.output()
        assert out == ""
        assert err.count("\n") == 1 and "already running" in err, err
        assert str(first.process.pid) in err
        assert all(alive(pid) for pid in started)  # the first one goes on, untouched
        assert not refuses_connections(host, port)
    finally:
        first.process.send_signal(signal.SIGTERM)
    assert await first.wait() == 0, first
    assert_all_gone(started, host, port)


async def test_the_servers_of_a_killed_run_sh_still_hold_the_lock(
    project, tg, qiwi, tmp_path, runs
):
    """SIGKILL leaves run.sh no chance to stop its servers; they keep the lock, so a new
    run.sh does not start a second bot and an admin without a port beside them."""
    first = await Run(project, project_env(project, tg, qiwi), tmp_path).start(runs)
    _, _, started = await first.ready(tg)
    first.process.kill()
    await first.wait()
    try:
        second = await Run(project, project_env(project, tg, qiwi), tmp_path / "second").start(runs)
        assert await second.wait(timeout=30) == 1, second
        out, err = second.output()
        assert (out, err.count("\n")) == ("", 1)
        assert "the servers of an earlier run.sh still run" in err, err
    finally:
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
        await first.until(
            lambda: not any(alive(pid) for pid in started), "the end", STOP_TIMEOUT, running=False
        )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-closed"])
async def test_the_terminal_stops_everything(project, tg, qiwi, tmp_path, runs, sig):
    """Ctrl-C in a terminal is SIGINT, closing it SIGHUP, to the whole foreground
    process group: run.sh and everything it started get it."""
    run = await Run(project, project_env(project, tg, qiwi), tmp_path).start(runs, new_session=True)
    try:
        host, port, started = await run.ready(tg)
    finally:
        os.killpg(run.process.pid, sig)
    assert await run.wait() == 0, run
    assert_all_gone(started, host, port)


def the_bot(run: Run, started: dict[int, str]) -> int:
    return next(pid for pid, cmd in started.items() if "runbot.py" in cmd)


def the_admin_server(run: Run, started: dict[int, str]) -> int:
    """gunicorn's master (its workers are its children)."""
    return next(
        pid for pid, cmd in started.items()
        if "-m gunicorn" in cmd and parent_pid(pid) == run.process.pid
    )  # fmt: skip


@pytest.mark.parametrize(
    ("which", "sig", "said"),
    [
        pytest.param(
            the_bot, signal.SIGKILL, "the bot stopped (exit status 137)", id="the-bot-dies"
        ),
        # gunicorn's master exits 0 on SIGTERM: run.sh did not ask it to, so that is a
        # failure too (a process manager that restarts on failure restarts it).
        pytest.param(
            the_admin_server,
            signal.SIGTERM,
            "the admin server stopped (exit status 0)",
            id="the-admin-server-stops-cleanly",
        ),
    ],
)
async def test_when_one_server_stops_by_itself_the_other_is_stopped_and_run_sh_fails(
    project, tg, qiwi, tmp_path, runs, which, sig, said
):
    run = await Run(project, project_env(project, tg, qiwi), tmp_path).start(runs)
    try:
        host, port, started = await run.ready(tg)
        os.kill(which(run, started), sig)
        assert await run.wait() == 1, run
    finally:
        if run.process.returncode is None:
            run.process.send_signal(signal.SIGTERM)
            await run.wait()
    assert_all_gone(started, host, port)
    assert f"run.sh: {said}: stopping everything." in run.output()[1]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({}, "TELEGRAM_API_TOKEN is not set", id="no-token"),
        pytest.param(
            {"TELEGRAM_API_TOKEN": "not-a-token", "QIWI_SECRET_KEY": "k"},
            "TELEGRAM_API_TOKEN is not a bot token",
            id="malformed-token",
        ),
        pytest.param(
            {"BACKEND_SECRET_KEY": "short", "TELEGRAM_API_TOKEN": TOKEN, "QIWI_SECRET_KEY": "k"},
            "(backend.E002) BACKEND_SECRET_KEY is too weak",
            id="weak-key",
        ),
        pytest.param(
            {"ADMIN_WORKERS": "many", "TELEGRAM_API_TOKEN": TOKEN, "QIWI_SECRET_KEY": "k"},
            "ADMIN_WORKERS must be a whole number",
            id="admin-workers",
        ),
        pytest.param(  # both said, one line each
            {"BACKEND_SECRET_KEY": "short"},
            "(backend.E002) BACKEND_SECRET_KEY is too weak",
            id="weak-key-and-no-token",
        ),
    ],
)
def test_a_configuration_error_starts_nothing(project, tmp_path, values, message):
    env = project_env(project, TELEGRAM_API_SERVER="http://127.0.0.1:9", **values)
    result = subprocess.run(
        [str(project / "scripts" / "run.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert any(message in line for line in lines), result.stderr
    if "TELEGRAM_API_TOKEN" not in values:
        assert any("TELEGRAM_API_TOKEN is not set" in line for line in lines), lines
    assert "Traceback" not in result.stderr
    assert "Admin site" not in result.stdout
    assert "gunicorn" not in result.stderr
    assert not (project / "db.sqlite3").exists()  # not even migrated
    if "BACKEND_SECRET_KEY" not in values:
        assert len(dotenv_values(project / ".env")["BACKEND_SECRET_KEY"]) >= 50
