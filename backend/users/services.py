"""Writes to Telegram users. The balance is not written here: see payments.services."""

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.utils import timezone
from loguru import logger

from backend.common.db import db_async
from backend.payments.receipts import receipt_contact_parse
from backend.users.models import TelegramUser


def _storable(text: str | None) -> str:
    """What every database stores: no NUL (PostgreSQL refuses it), no lone surrogate."""
    if not text:
        return ""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def user_upsert(
    *,
    telegram_id: int,
    username: str | None,
    first_name: str | None,
    last_name: str | None,
    language_code: str | None,
) -> TelegramUser:
    """Create the user on first contact, refresh names and last-seen time afterwards.

    One statement (INSERT … ON CONFLICT DO UPDATE … RETURNING on PostgreSQL and SQLite,
    INSERT … ON DUPLICATE KEY UPDATE … RETURNING on MariaDB; MySQL, which has no
    RETURNING, reads the row back with a second): it runs for
    every update the bot gets, where the ORM's `update_or_create` took a transaction, a
    row lock and up to six round trips. Balance and block are never written here; the
    stored ones come back.
    """
    values = {
        "telegram_id": telegram_id,
        "username": _storable(username),
        "first_name": _storable(first_name),
        "last_name": _storable(last_name),
        "language_code": _storable(language_code),
        "balance": Decimal("0.00"),
        "is_blocked": False,
        "created_at": (now := timezone.now()),
        "last_seen_at": now,
        "bot_blocked_at": None,  # whoever writes to the bot can hear it again
        "receipt_contact": "",  # a new user's; a known one's is kept
    }
    connection = connections[router.db_for_write(TelegramUser)]
    sql, fields = _upsert_sql(connection)
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields[1:]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if not connection.features.can_return_columns_from_insert:  # MySQL
            cursor.execute(_read_back(connection, fields), [telegram_id])
        row = cursor.fetchone()
    return _user_from_row(connection, fields, row)


_UPDATED_ON_CONFLICT = ("username", "first_name", "last_name", "language_code", "last_seen_at")


def _upsert_sql(connection: BaseDatabaseWrapper) -> tuple[str, list[Field]]:
    """The statement and the fields it returns (the primary key first, then the rest in
    the order of the inserted values)."""
    if connection.vendor not in _UPSERT_SQL:
        _UPSERT_SQL[connection.vendor] = _build_upsert_sql(connection)
    return _UPSERT_SQL[connection.vendor]


_UPSERT_SQL: dict[str, tuple[str, list[Field]]] = {}


def _build_upsert_sql(connection: BaseDatabaseWrapper) -> tuple[str, list[Field]]:
    meta = TelegramUser._meta
    pk = meta.pk
    fields = [pk, *(f for f in meta.concrete_fields if f is not pk)]
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in fields[1:])
    updates = [f"{q(c)} = EXCLUDED.{q(c)}" for c in _UPDATED_ON_CONFLICT]
    updates.append(f"{q('bot_blocked_at')} = NULL")
    # On PostgreSQL the statement does not wait for its WAL to reach the disk (both
    # statements in one message run as one transaction): a crash may lose the last
    # moments of names and last-seen times, never money, and any later synchronous
    # commit (every bill and ledger write) flushes these rows first.
    if connection.vendor == "mysql":
        updates = [f"{q(c)} = VALUES({q(c)})" for c in _UPDATED_ON_CONFLICT]
        updates.append(f"{q('bot_blocked_at')} = NULL")
        sql = (
            f"INSERT INTO {q(meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * (len(fields) - 1))}) "
            f"ON DUPLICATE KEY UPDATE {', '.join(updates)}"
        )
        if connection.features.can_return_columns_from_insert:  # MariaDB
            sql += f" RETURNING {', '.join(q(f.column) for f in fields)}"
        return sql, fields
    prefix = "SET LOCAL synchronous_commit TO OFF; " if connection.vendor == "postgresql" else ""
    sql = prefix + (
        f"INSERT INTO {q(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * (len(fields) - 1))}) "
        f"ON CONFLICT ({q('telegram_id')}) DO UPDATE SET {', '.join(updates)} "
        f"RETURNING {', '.join(q(f.column) for f in fields)}"
    )
    return sql, fields


def _read_back(connection: BaseDatabaseWrapper, fields: list[Field]) -> str:
    q = connection.ops.quote_name
    return (
        f"SELECT {', '.join(q(f.column) for f in fields)} "
        f"FROM {q(TelegramUser._meta.db_table)} WHERE {q('telegram_id')} = %s"
    )


def _user_from_row(
    connection: BaseDatabaseWrapper, fields: list[Field], row: tuple[Any, ...]
) -> TelegramUser:
    """A model instance from a raw row, with the conversions a queryset would apply
    (SQLite returns dates as text, for one)."""
    values = []
    for field, value in zip(fields, row, strict=True):
        col = field.get_col(TelegramUser._meta.db_table)
        for convert in (
            *connection.ops.get_db_converters(col),
            *col.get_db_converters(connection),
        ):
            value = convert(value, col, connection)
        values.append(value)
    return TelegramUser.from_db(connection.alias, [f.attname for f in fields], values)


def user_mark_bot_blocked(*, telegram_id: int) -> None:
    """Telegram refused a message (403): the user blocked the bot or left Telegram."""
    TelegramUser.objects.filter(telegram_id=telegram_id, bot_blocked_at=None).update(
        bot_blocked_at=timezone.now()
    )


def _user_set_blocked(
    *, telegram_id: int, blocked: bool, admin: AbstractBaseUser | None
) -> TelegramUser:
    user = TelegramUser.objects.get(telegram_id=telegram_id)
    if user.is_blocked != blocked:
        TelegramUser.objects.filter(pk=user.pk).update(is_blocked=blocked)
        user.is_blocked = blocked
        logger.info(
            "user {} {} by {}",
            telegram_id,
            "blocked" if blocked else "unblocked",
            admin.get_username() if admin else "the command line",
        )
    return user


def user_block(*, telegram_id: int, admin: AbstractBaseUser | None = None) -> TelegramUser:
    """The bot stops reacting to the user from the next update on."""
    return _user_set_blocked(telegram_id=telegram_id, blocked=True, admin=admin)


def user_unblock(*, telegram_id: int, admin: AbstractBaseUser | None = None) -> TelegramUser:
    return _user_set_blocked(telegram_id=telegram_id, blocked=False, admin=admin)


def user_set_receipt_contact(*, telegram_id: int, contact: str) -> TelegramUser:
    """Keep where the user's fiscal receipts go: an e-mail, or a Russian phone stored as
    11 digits from 7 (`backend.payments.receipts.receipt_contact_parse`). Raises
    ReceiptContactError, changing nothing, for anything else."""
    value = receipt_contact_parse(contact)
    user = TelegramUser.objects.get(telegram_id=telegram_id)
    if user.receipt_contact != value:
        TelegramUser.objects.filter(pk=user.pk).update(receipt_contact=value)
        user.receipt_contact = value
    return user


# For async code (backend.common.db). The upsert is one statement that may run twice.
auser_upsert = db_async(user_upsert, idempotent=True)
auser_mark_bot_blocked = db_async(user_mark_bot_blocked)
auser_set_receipt_contact = db_async(user_set_receipt_contact)
