"""The admin under gunicorn as scripts/run.sh starts it (scripts/gunicorn.conf.py), as a
real process on a SQLite file with thousands of users: the exports are streamed (their
first bytes arrive while the rest is still being made), static files are served by
WhiteNoise from the collected STATIC_ROOT with the admin's headers, and the server runs
in a copy of the project (tests/project_copy.py)."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import zipfile
from dataclasses import dataclass
from http.cookies import SimpleCookie
from io import BytesIO
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from django.conf import settings

from backend.security import CSP_HEADER, csp_header_value
from backend.users import exports
from tests.helpers import TEST_SECRET_KEY
from tests.project_copy import admin_url, clean_env, copy_project, run_python, wait_for

USERNAME, PASSWORD = "boss", "pw-Boss-2024-streams"
EXPORT_URL = "/admin/users/telegramuser/export/{kind}/"
CLIENT_RECEIVE_BUFFER = 4096  # the kernel doubles it


def send_buffer_limit() -> int:
    """The most a TCP socket of this machine may hold unsent (the kernel's autotuning
    ceiling, net.ipv4.tcp_wmem's last figure)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * 1024 * 1024  # Linux's default


# What may sit between gunicorn's `sendall` and our `recv` while we read nothing: its
# socket's send buffer, our (small) receive buffer, and some slack. A body much larger
# than that cannot be all sent before we read on: gunicorn is stuck in the middle of it.
IN_FLIGHT = send_buffer_limit() + 4 * CLIENT_RECEIVE_BUFFER + 256 * 1024
# Random letters compress poorly, so the XLSX (deflated) is large too: ~ 450 bytes a row.
USERS = 3 * IN_FLIGHT // 450
SEED = """
import os, random
from backend.users.models import TelegramUser
letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
pick = random.Random(7).choices
TelegramUser.objects.bulk_create(
    (
        TelegramUser(
            telegram_id=7_000_000_000 + i,
            username="".join(pick(letters, k=60)),
            first_name="".join(pick(letters, k=250)),
            last_name="".join(pick(letters, k=250)),
        )
        for i in range(int(os.environ["SEED_USERS"]))
    ),
    batch_size=2000,
)
"""


@dataclass
class Server:
    host: str
    port: int
    project: Path
    access_log: Path
    session: str  # the cookie of a logged-in superuser

    def access_lines(self, path: str) -> list[str]:
        if not self.access_log.exists():
            return []
        return [line for line in self.access_log.read_text().splitlines() if f" {path} " in line]


def log_in(host: str, port: int, **headers: str) -> str:
    """The admin's login form, as a browser fills it; returns the session cookie."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/admin/login/")
    page = connection.getresponse()
    html = page.read().decode()
    assert page.status == 200, html[:500]
    csrf_cookie = SimpleCookie(page.headers["Set-Cookie"])["csrftoken"].value
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = {"csrfmiddlewaretoken": token, "username": USERNAME, "password": PASSWORD}
    connection.request(
        "POST",
        "/admin/login/?next=/admin/",
        body=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
            **headers,
        },
    )
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 302, answer.status
    session = SimpleCookie(", ".join(answer.headers.get_all("Set-Cookie")))["sessionid"].value
    connection.close()
    return session


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn with run.sh's config and two workers, on a free port, after the steps
    of run.sh (migrate, collectstatic) and a superuser and USERS users."""
    folder = tmp_path_factory.mktemp("admin-server")
    project = copy_project(folder / "project")
    env = clean_env(
        project,
        DEBUG="false",
        BACKEND_SECRET_KEY=TEST_SECRET_KEY,
        DATABASE_URL=f"sqlite:///{folder}/admin.sqlite3",
        LOG_DIR=str(folder / "logs"),
        SECURE_COOKIES="false",  # plain HTTP, as run.sh serves it
    )
    run_python(project, "manage.py", "migrate", "--noinput", env=env)
    run_python(project, "manage.py", "collectstatic", "--noinput", env=env)
    run_python(
        project, "manage.py", "createsuperuser", "--noinput", env=env | {
            "DJANGO_SUPERUSER_USERNAME": USERNAME,
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            "DJANGO_SUPERUSER_EMAIL": "boss@example.com",
        },
    )  # fmt: skip
    run_python(project, "manage.py", "shell", "-c", SEED, env=env | {"SEED_USERS": str(USERS)})

    access_log = folder / "access.log"
    console = folder / "gunicorn.txt"
    with console.open("wb") as output:
        process = subprocess.Popen(
            [
                str(project / ".venv" / "bin" / "python"), "-m", "gunicorn",
                "-c", "scripts/gunicorn.conf.py", "--bind", "127.0.0.1:0", "--workers", "2",
                "--access-logfile", str(access_log),
            ],
            cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        address = urlsplit(admin_url(console, process))
        session = log_in(address.hostname, address.port)
        yield Server(address.hostname, address.port, project, access_log, session)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, console.read_text()[-3000:]


class RawResponse:
    """An HTTP/1.1 response read off a socket by hand, so the test decides when to read
    on: the status, the headers, then the body one chunk at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError("the server closed the connection early")
        self.buffer += data

    def _take_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        status = int(self._take_line().split()[1])
        headers = {}
        while line := self._take_line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def chunk(self) -> bytes | None:
        """The next chunk of a chunked body; None after the last one."""
        size = int(self._take_line().split(b";")[0], 16)
        data = self._take(size)
        assert self._take(2) == b"\r\n"
        if size == 0:
            return None
        return data


def export_request(server: Server, kind: str) -> RawResponse:
    """Asks for an export over a socket with a small receive buffer, reading nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RECEIVE_BUFFER)
    sock.settimeout(60)
    sock.connect((server.host, server.port))
    sock.sendall(
        (
            f"GET {EXPORT_URL.format(kind=kind)} HTTP/1.1\r\n"
            f"Host: {server.host}:{server.port}\r\n"
            f"Cookie: sessionid={server.session}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
    )
    return RawResponse(sock)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_an_export_is_streamed_its_first_bytes_come_before_the_rest_is_made(server, kind):
    """Each piece the export yields goes out at once as an HTTP chunk. Read the status,
    the headers and the first chunk only: the rest is far larger than what the sockets
    can hold between them, so gunicorn is still in the middle of the response, and it
    has not finished it (its access log line is written at the end)."""
    path = EXPORT_URL.format(kind=kind)
    response = export_request(server, kind)
    try:
        status, headers = response.head()
        assert status == 200
        assert headers.get("transfer-encoding") == "chunked", headers
        assert "content-length" not in headers
        first = response.chunk()
        if kind == "csv":
            # the header row alone: sent before the first row was read from the database
            assert first.decode() == exports.csv_header(bom=True)
        else:
            assert first.startswith(b"PK\x03\x04")  # a zip's first entry
        assert server.access_lines(path) == []  # the response is not complete

        body = [first]
        while (chunk := response.chunk()) is not None:
            body.append(chunk)
    finally:
        response.sock.close()
    data = b"".join(body)
    assert len(data) > 2 * IN_FLIGHT  # what makes the check above hold, whatever the timing
    assert len(body) > 10
    if kind == "csv":
        lines = data.decode("utf-8-sig").splitlines()
        assert len(lines) == USERS + 1
        assert lines[1].startswith('"7000000000";')
    else:
        with zipfile.ZipFile(BytesIO(data)) as workbook:
            sheet = workbook.read("xl/worksheets/sheet1.xml")
        assert sheet.count(b"<row ") == USERS + 1
    line = wait_for(lambda: server.access_lines(path), 30, "the export's access log line")
    assert f'"GET {path} HTTP/1.1" 200 ' in line[0]


def get(server: Server, path: str, session: str = "") -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    connection.request("GET", path, headers={"Cookie": f"sessionid={session}"} if session else {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_our_css_is_served_from_the_same_origin_with_the_admins_headers(server):
    response, body = get(server, "/static/users/admin.css")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert body == (server.project / "backend/users/static/users/admin.css").read_bytes()
    assert response.headers[CSP_HEADER] == csp_header_value(settings.SECURE_CSP)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Cache-Control" in response.headers  # WhiteNoise's, not Django's


def test_the_admin_pages_load_their_static_files_from_here(server):
    """The users list loads its CSS and scripts from this origin (as the CSP wants):
    the static ones from /static/, served by WhiteNoise, the rest from the admin."""
    response, body = get(server, "/admin/users/telegramuser/", server.session)
    assert response.status == 200
    html = body.decode()
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert "/static/users/admin.css" in sheets
    assert sheets and scripts
    for url, content_type in [
        *((s, "text/css") for s in sheets),
        *((s, "text/javascript") for s in scripts),
    ]:
        assert url.startswith("/") and not url.startswith("//"), url  # this origin
        response, _ = get(server, url, server.session)
        assert response.status == 200, url
        assert response.headers["Content-Type"].startswith(content_type), url


def test_an_unknown_static_file_is_a_404_from_django(server):
    response, _ = get(server, "/static/users/nothing-here.css")
    assert response.status == 404
    assert response.headers[CSP_HEADER] == csp_header_value(settings.SECURE_CSP)


def test_gunicorn_trusts_no_forwarded_header(server):
    """HTTPS is what Django's SECURE_PROXY_SSL_HEADER says (unset here), not what
    gunicorn would take from a local peer: a login claiming X-Forwarded-Proto: https
    without a Referer passes, where Django's CSRF check of an HTTPS request would refuse
    it for the missing Referer."""
    assert log_in(server.host, server.port, **{"X-Forwarded-Proto": "https"})


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param(None, "(backend.E001) BACKEND_SECRET_KEY is not set", id="no-key"),
        pytest.param("short", "(backend.E002) BACKEND_SECRET_KEY is too weak", id="weak-key"),
    ],
)
def test_gunicorn_started_directly_does_not_serve_without_a_strong_key(
    server, tmp_path, key, message
):
    """As deploy/topup-admin.service starts it, with no run.sh (and so no system checks)
    before: its worker refuses to boot and the server exits, saying why."""
    values = {"BACKEND_SECRET_KEY": key} if key else {}
    env = clean_env(
        server.project,
        DEBUG="false",
        DATABASE_URL=f"sqlite:///{tmp_path}/admin.sqlite3",
        LOG_DIR=str(tmp_path / "logs"),
        **values,
    )
    result = subprocess.run(
        [
            str(server.project / ".venv" / "bin" / "python"), "-m", "gunicorn",
            "-c", "scripts/gunicorn.conf.py", "--bind", "127.0.0.1:0", "--workers", "1",
        ],
        cwd=server.project, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout + result.stderr
    assert message in result.stderr, result.stderr[-3000:]
    assert "Worker failed to boot" in result.stderr
    assert "Admin site" not in result.stdout  # the banner says the site answers
