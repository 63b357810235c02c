"""One polling bot per bot token and database, whatever runs twice.

Two processes polling one token make Telegram answer 409 to both; a deploy overlap or
an admin starting the bot twice does exactly that. The lock lives in the database
itself: a PostgreSQL advisory lock held by a session of its own, or, on SQLite, an
exclusive flock on a file beside the database file. Crediting never depended on this:
it is exactly-once by itself; this keeps polling to one process.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Protocol

from django.db import connections


class InstanceLock(Protocol):
    async def acquire(self) -> bool: ...  # True: this process holds it now
    async def held(self) -> bool: ...  # still held (the session may have died)
    async def release(self) -> None: ...


class PostgresLock:
    def __init__(self, key: int) -> None:
        self._key = key
        self._conn = None

    def _acquire(self) -> bool:
        import psycopg2

        if self._conn is None or self._conn.closed:
            params = connections["default"].get_connection_params()
            self._conn = psycopg2.connect(**params, application_name="topup-bot-lock")
            self._conn.autocommit = True
        with self._conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self._key])
            got = cursor.fetchone()[0]
        if not got:
            self._close()
        return got

    def _held(self) -> bool:
        if self._conn is None or self._conn.closed:
            return False
        try:
            with self._conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except Exception:
            self._close()
            return False

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    async def acquire(self) -> bool:
        return await asyncio.to_thread(self._acquire)

    async def held(self) -> bool:
        return await asyncio.to_thread(self._held)

    async def release(self) -> None:
        await asyncio.to_thread(self._close)  # ending the session frees the lock


class FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    async def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file frees the lock
            self._fd = None


def instance_lock(bot_id: int) -> InstanceLock:
    connection = connections["default"]
    if connection.vendor == "postgresql":
        return PostgresLock(key=bot_id)
    name = Path(str(connection.settings_dict["NAME"]))
    return FileLock(name.with_name(f"{name.name}.bot-{bot_id}.lock"))
