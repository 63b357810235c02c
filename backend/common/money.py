"""Money: `Decimal` rubles with two places in Python, whole kopecks in the database.

Django keeps a `DecimalField` as REAL on SQLite, so `balance = balance + 0.30` there runs
in binary floating point (0.30 - 0.10 stores 0.19999999999999998). Integers are exact on
every database, so the money columns hold kopecks (`bigint`) and `MoneyField` turns them
into `Decimal` at the edge: code above the ORM never sees a kopeck.

Arithmetic in SQL must keep both sides in kopecks: `F("balance") + money_value(amount)`,
never `F("balance") + amount` (Django would send 0.30 as a decimal parameter).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import models
from django.db.models import Value

CENT = Decimal("0.01")
# The largest balance and the largest single amount: 14 digits, as the columns held
# before they became kopecks. A spreadsheet's number (a double) shows every one exactly.
MAX_AMOUNT = Decimal("999999999999.99")


def to_kopecks(value: Decimal) -> int:
    """Exact: a value with more than two decimal places is an error, never rounded."""
    try:
        scaled = value.scaleb(2)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than two decimal places")
        return int(scaled)
    except (InvalidOperation, OverflowError) as e:  # NaN, infinity
        raise ValueError(f"{value} is not an amount of money") from e


def from_kopecks(kopecks: int | Decimal | float) -> Decimal:
    # PostgreSQL's SUM of bigints arrives as a Decimal; nothing should ever be a float.
    if isinstance(kopecks, float):
        if not kopecks.is_integer():
            raise ValueError(f"{kopecks!r} kopecks: money columns hold whole kopecks")
        kopecks = int(kopecks)
    return Decimal(kopecks).scaleb(-2)


class MoneyField(models.DecimalField):
    """A `Decimal` with two places, stored as whole kopecks in a `bigint` column.

    To the backends it is a big integer (column type, converters, no CAST to NUMERIC on
    SQLite); to forms, the admin and Python code it is a `DecimalField`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 14)
        kwargs["decimal_places"] = 2
        super().__init__(*args, **kwargs)

    def get_internal_type(self) -> str:
        return "BigIntegerField"

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if value is None:
            return None
        return to_kopecks(self.to_python(value))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Decimal | None:
        return None if value is None else from_kopecks(value)


# How the admin writes a currency after a sum; any other is written by its code.
CURRENCY_SIGNS = {"RUB": "₽"}
NBSP = "\u00a0"  # between digit groups and before the sign: a sum never breaks across lines


def money_format(amount: Decimal, *, currency: str = "RUB", signed: bool = False) -> str:
    """A sum as the admin shows it everywhere, the Russian way: «1 000,50 ₽», «-50,00 ₽»;
    `signed` adds «+» to a positive one (a change: «+150,00 ₽»). Two decimals always,
    digit groups split by no-break spaces."""
    sign = "-" if amount < 0 else "+" if signed and amount > 0 else ""
    rubles, kopecks = f"{abs(amount).quantize(CENT):,.2f}".split(".")
    unit = CURRENCY_SIGNS.get(currency, currency)
    return f"{sign}{rubles.replace(',', NBSP)},{kopecks}{NBSP}{unit}"


def money_value(amount: Decimal) -> Value:
    """`amount` as an SQL value in kopecks, for arithmetic with a money column."""
    return Value(amount, output_field=MoneyField())
