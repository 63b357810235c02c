"""One polling bot per bot token and database, whatever runs twice.

Two processes polling one token make Telegram answer 409 to both; a deploy overlap or
an admin starting the bot twice does exactly that. The lock lives in the database
itself: a PostgreSQL advisory lock or a MySQL named lock (GET_LOCK), each held by a
session of its own, or, on SQLite, an exclusive flock on a file beside the database
file. A server restart ends the session and with it the lock: `held` sees that, and
the runner takes the lock again (or waits for whoever took it first). Crediting never
depended on this: it is exactly-once by itself; this keeps polling to one process.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

from django.db import connections


class InstanceLock(Protocol):
    async def acquire(self) -> bool: ...  # True: this process holds it now
    async def held(self) -> bool: ...  # still held (the session may have died)
    async def release(self) -> None: ...


class SessionLock:
    """A lock that lives as long as a database session of its own."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._conn: Any = None

    def _connect(self) -> Any:
        raise NotImplementedError

    def _try_lock(self, cursor: Any) -> bool:
        raise NotImplementedError

    def _acquire(self) -> bool:
        if self._conn is None:
            self._conn = self._connect()
        cursor = self._conn.cursor()
        try:
            got = self._try_lock(cursor)
        finally:
            cursor.close()
        if not got:
            self._close()
        return got

    def _held(self) -> bool:
        if self._conn is None:
            return False
        try:
            cursor = self._conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            return True
        except Exception:
            self._close()
            return False

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass  # a connection the server has cut is gone already
            finally:
                self._conn = None

    async def acquire(self) -> bool:
        return await asyncio.to_thread(self._acquire)

    async def held(self) -> bool:
        return await asyncio.to_thread(self._held)

    async def release(self) -> None:
        await asyncio.to_thread(self._close)  # ending the session frees the lock


class PostgresLock(SessionLock):
    def __init__(self, key: int) -> None:
        super().__init__(str(key))
        self._key = key

    def _connect(self) -> Any:
        import psycopg2

        params = connections["default"].get_connection_params()
        conn = psycopg2.connect(**params, application_name="topup-bot-lock")
        conn.autocommit = True
        return conn

    def _try_lock(self, cursor: Any) -> bool:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [self._key])
        return bool(cursor.fetchone()[0])


class MySQLLock(SessionLock):
    """GET_LOCK names are server-wide: the name carries the database's too."""

    def _connect(self) -> Any:
        import MySQLdb

        params = connections["default"].get_connection_params()
        params.pop("init_command", None)
        conn = MySQLdb.connect(**params)
        conn.autocommit(True)
        return conn

    def _try_lock(self, cursor: Any) -> bool:
        cursor.execute("SELECT GET_LOCK(%s, 0)", [self._name])
        return cursor.fetchone()[0] == 1


def mysql_lock_name(database: str, bot_id: int) -> str:
    """`topup:<database>:<bot id>`, the database part cut by a hash to fit GET_LOCK's
    64 characters."""
    name = f"topup:{database}:{bot_id}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    return f"topup:{digest}:{bot_id}"


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
    if connection.vendor == "mysql":
        return MySQLLock(mysql_lock_name(str(connection.settings_dict["NAME"]), bot_id))
    name = Path(str(connection.settings_dict["NAME"]))
    return FileLock(name.with_name(f"{name.name}.bot-{bot_id}.lock"))
