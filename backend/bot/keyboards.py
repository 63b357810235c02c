from functools import cache

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from backend.bot import texts
from backend.bot.callbacks import Cancel, CheckBill, Confirm, MyBalance, PayWith, TopUp
from backend.payments.vocabulary import ProviderName


def _button(text: str, data) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


@cache  # the same for everyone, built once: it goes out with every greeting
def start() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(texts.TOP_UP_BUTTON, TopUp())],
            [_button(texts.BALANCE_BUTTON, MyBalance())],
        ]
    )


@cache
def top_up() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(texts.TOP_UP_BUTTON, TopUp())]])


@cache
def cancel() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(texts.CANCEL_BUTTON, Cancel())]])


def confirm(amount: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(texts.CONFIRM_BUTTON, Confirm(amount=amount)),
                _button(texts.CANCEL_BUTTON, Cancel()),
            ]
        ]
    )


def link(text: str, url: str) -> InlineKeyboardMarkup:
    """One button that opens `url` (a broadcast's)."""
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=text, url=url)]])


def bill(pay_url: str, bill_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=texts.PAY_LINK_BUTTON, url=pay_url)],
            [_button(texts.CHECK_BUTTON, CheckBill(bill_id=bill_id))],
        ]
    )


def bill_closed(status: str, bill_id: str) -> InlineKeyboardMarkup:
    """A closed bill's message: no pay link, only what became of the bill (pressing it
    says so again, or finds a payment that came late)."""
    button = _button(texts.closed_bill_button(status), CheckBill(bill_id=bill_id))
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def pay_with(amount: int, choices: list[tuple[ProviderName, str]]) -> InlineKeyboardMarkup:
    """One button per (provider, its button text), then «Отмена»."""
    rows = [[_button(text, PayWith(provider=name, amount=amount))] for name, text in choices]
    return InlineKeyboardMarkup(inline_keyboard=[*rows, [_button(texts.CANCEL_BUTTON, Cancel())]])
