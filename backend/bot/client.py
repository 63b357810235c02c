"""The bot as a Telegram client: building the `Bot`, sending from outside a handler
(the bill jobs, reports to admins, the admin's actions), telling a bill's owner what
happened to it. A leaf: it knows no handler, dispatcher or runner, so the admin may use
it (`connect`).

A 429 is waited out and the message sent again (`backend.bot.session`); a user who
blocked the bot is logged and skipped; other failures are retried a few times, then
logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlencode

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramServerError,
)
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardMarkup,
    Message,
    MessageId,
)
from aiohttp import FormData
from aiohttp.payload import BytesPayload
from django.conf import settings
from loguru import logger
from pydantic import PrivateAttr

from backend.bot import keyboards, texts
from backend.bot.session import RequestMetrics, TelegramRequestPolicy
from backend.common import metrics
from backend.common.outbox import OutboxStatus
from backend.log_setup import redact
from backend.payments.models import Bill
from backend.payments.providers import providers_from_settings
from backend.payments.providers.base import PaymentProvider
from backend.payments.services import BillTransition
from backend.payments.vocabulary import ProviderName
from backend.users.services import auser_mark_bot_blocked

ATTEMPTS = 5
QUIET_STATUSES = (Bill.Status.NEW, Bill.Status.WAITING, Bill.Status.FAILED)


def build_bot(*, token: str, api_server: str) -> Bot:
    session = BotSession(api=TelegramAPIServer.from_base(api_server))
    session.middleware(TelegramRequestPolicy())
    session.middleware(RequestMetrics())  # inside the policy: each 429 retry is counted
    return Bot(
        token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


@dataclass(frozen=True)
class Delivery:
    """What became of a message: `message` when it was sent, else `bot_blocked` (the
    user has blocked the bot, or `left`: deleted their account) or an `error`."""

    message: Message | MessageId | None = None  # MessageId: a `PreparedMessage`'s
    bot_blocked: bool = False
    left: bool = False
    error: str = ""


async def deliver(
    bot: Bot, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> Delivery:
    """Send a message: a 429 is waited out (backend.bot.session), a 403 marks the user as
    having blocked the bot, a server or network fault is retried `ATTEMPTS` times. Any
    other refusal (a 400) raises, as aiogram's TelegramBadRequest."""
    return await _deliver(
        chat_id, lambda: bot.send_message(chat_id, text, reply_markup=reply_markup)
    )


class PreparedMessage(TelegramMethod[MessageId]):
    """sendMessage with its fields made ready to send once (`prepare_message`), for the
    same message to many chats (a broadcast), and only the message's id read from the
    answer. aiogram otherwise builds a SendMessage, prepares its fields (the keyboard's
    JSON, the defaults), encodes the form and parses the whole Message that comes back
    for every chat: at a thousand messages a second that was most of the bot's CPU.
    `BotSession` sends the form encoded once; any other session sends the fields, kept
    as extra attributes, as they are."""

    __returning__ = MessageId
    __api_method__ = "sendMessage"

    chat_id: int
    _encoded: bytes = PrivateAttr(b"")  # the fields but the chat, url-encoded

    def to(self, chat_id: int) -> PreparedMessage:
        return self.model_copy(update={"chat_id": chat_id})

    def payload(self) -> BytesPayload:
        """The form as aiohttp's FormData would encode it (the chat first)."""
        body = f"chat_id={self.chat_id}&".encode() + self._encoded
        return BytesPayload(body, content_type=FORM)


FORM = "application/x-www-form-urlencoded"


class BotSession(AiohttpSession):
    """aiogram's session, sending a `PreparedMessage` as it was encoded once, and any
    other request without files url-encoded here: the bytes aiohttp's FormData would
    send, without the multipart writer (and its random boundary, a system call) that
    FormData makes for every request, files or not. A request with files goes
    aiogram's way."""

    def build_form_data(self, bot: Bot, method: TelegramMethod[Any]) -> FormData:
        if isinstance(method, PreparedMessage):
            return method.payload()  # type: ignore[return-value]  # aiohttp takes either
        files: dict[str, Any] = {}
        fields = form_fields(bot, method, files)
        if files:
            return super().build_form_data(bot, method)
        body = urlencode(fields, doseq=True, encoding="utf-8").encode()
        return BytesPayload(body, content_type=FORM)  # type: ignore[return-value]


def form_fields(bot: Bot, method: TelegramMethod[Any], files: dict[str, Any]) -> list:
    """The request's fields as aiogram sends them (`files` gets the files): (name, value),
    the empty ones left out, an enum (ParseMode) as its value."""
    fields = []
    for key, value in method.model_dump(warnings=False).items():
        prepared = bot.session.prepare_value(value, bot=bot, files=files)
        if prepared:
            fields.append((key, prepared.value if isinstance(prepared, Enum) else prepared))
    return fields


def prepare_message(
    bot: Bot, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> PreparedMessage:
    """What `bot.send_message(chat_id, text, reply_markup=…)` would send, but the chat."""
    method = SendMessage(chat_id=0, text=text, reply_markup=reply_markup)
    fields = dict(form_fields(bot, method, files={}))  # a text has no files
    fields.pop("chat_id", None)  # each message gets its own
    message = PreparedMessage.model_construct(chat_id=0, **fields)
    message._encoded = urlencode(fields, encoding="utf-8").encode()
    return message


async def deliver_prepared(bot: Bot, message: PreparedMessage, chat_id: int) -> Delivery:
    """`deliver` for a prepared message; a sent one's `message` is only its id."""
    return await _deliver(chat_id, lambda: bot(message.to(chat_id)))


async def _deliver(chat_id: int, send: Callable[[], Awaitable[Message | MessageId]]) -> Delivery:
    delay = 1.0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return Delivery(message=await send())
        except TelegramForbiddenError as e:
            # «Forbidden: user is deactivated»: the account is gone; either way nothing
            # more reaches this user, and the user counts as having blocked the bot.
            left = "deactivated" in e.message
            logger.warning(
                "user {} {}: message not delivered",
                chat_id, "has deleted their account" if left else "has blocked the bot",
            )  # fmt: skip
            await auser_mark_bot_blocked(telegram_id=chat_id)
            return Delivery(bot_blocked=True, left=left)
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as e:
            if attempt == ATTEMPTS:
                logger.error("message to {} not delivered after {} attempts", chat_id, ATTEMPTS)
                return Delivery(error=redact(str(e)))
            logger.warning("sending to {} failed ({}), retrying in {} s", chat_id, e, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def outbox_outcome(delivery: Delivery) -> tuple[OutboxStatus, str]:
    """A queued message's status (a notice's, a broadcast's) after `deliver`, and its error."""
    if delivery.message is not None:
        return OutboxStatus.SENT, ""
    if delivery.left:
        return OutboxStatus.LEFT, ""
    if delivery.bot_blocked:
        return OutboxStatus.BOT_BLOCKED, ""
    return OutboxStatus.FAILED, delivery.error


async def send(
    bot: Bot, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """`deliver`, for those who only need the message (None: not delivered)."""
    return (await deliver(bot, chat_id, text, reply_markup)).message


def transition_message(transition: BillTransition) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text (and keyboard) that tells a user what happened to a bill."""
    bill = transition.bill
    if transition.credited:
        return texts.bill_paid(bill.amount, transition.balance), None
    if transition.unknown_status:
        return texts.bill_unknown(transition.unknown_status), None
    match bill.status:
        case Bill.Status.PAID:
            return texts.BILL_ALREADY_PAID, None
        case Bill.Status.REJECTED:
            return texts.BILL_REJECTED, keyboards.start()
        case Bill.Status.EXPIRED:
            return texts.BILL_EXPIRED, keyboards.start()
        case Bill.Status.FAILED:
            return texts.BILL_ALREADY_CLOSED, keyboards.start()
    return texts.BILL_WAITING, None


class BillNotifier:
    """Tells the owner of a bill what the bill jobs found; blocked users hear nothing.

    The one place where the bill jobs (the poller, the Telegram bills' expiry, the Stars
    reconciliation) report transitions: they are counted here (`metrics.bill_transition`)."""

    def __init__(self, bot: Bot | None) -> None:
        self._bot = bot  # None: no token here, so nobody is told (the transition counts)

    async def __call__(self, transition: BillTransition) -> None:
        metrics.bill_transition(transition)
        bill, user = transition.bill, transition.bill.user
        if self._bot is None or user.is_blocked:
            return
        if bill.status in QUIET_STATUSES and not transition.unknown_status:
            return  # a bill recovered after a crash in its creation: nothing to tell yet
        text, markup = transition_message(transition)
        await send(self._bot, user.telegram_id, text, reply_markup=markup)
        await close_bill_message(self._bot, bill)


async def close_bill_message(bot: Bot, bill: Bill) -> None:
    """Once a bill is closed, its message offers no pay link: one button saying what
    became of it. Best effort: a message deleted, too old or already edited stays as
    it is, and a network fault is only logged (the bill itself is settled)."""
    if bill.is_open or bill.message_id is None:
        return
    try:
        await bot.edit_message_reply_markup(
            chat_id=bill.user.telegram_id,
            message_id=bill.message_id,
            reply_markup=keyboards.bill_closed(bill.status, bill.pk),
        )
    except TelegramBadRequest:
        pass  # «message is not modified», «message to edit not found», …
    except TelegramForbiddenError:
        pass  # the user has blocked the bot: `send` has said so
    except AiogramError as e:
        logger.warning("bill {}: its message not edited: {}", bill.pk, e)


async def report_to_admins(bot: Bot, admin_ids: Iterable[int], where: str, error: str) -> None:
    """A short note to each admin id; secrets are masked as in the logs."""
    text = texts.support_report(where, redact(error))
    await asyncio.gather(*(send(bot, admin_id, text) for admin_id in admin_ids))


async def publish_commands(
    bot: Bot, admin_ids: Iterable[int], *, receipts: bool = False, attempts: int = ATTEMPTS
) -> None:
    """The bot's menu in Telegram (setMyCommands): /start and /balance for everyone
    (/receipt too when a way to pay sends receipts), and /admin too in each admin's own
    chat. Retried while Telegram does not answer; an admin
    chat Telegram does not know (the admin never wrote to the bot) is skipped with a
    warning. Telegram keeps the menu: a failure only means an older one stays shown."""

    def commands(described: dict[str, str]) -> list[BotCommand]:
        return [BotCommand(command=name, description=text) for name, text in described.items()]

    everyone = texts.COMMANDS | (texts.RECEIPT_COMMAND if receipts else {})
    admins = everyone | texts.ADMIN_COMMAND
    menus = [(None, commands(everyone))]
    menus += [(BotCommandScopeChat(chat_id=i), commands(admins)) for i in admin_ids]
    for scope, menu in menus:
        where = "everyone" if scope is None else f"admin chat {scope.chat_id}"
        delay = 1.0
        for attempt in range(1, attempts + 1):
            try:  # a 429 is waited out below us, in backend.bot.session
                await bot.set_my_commands(menu, scope=scope)
                break
            except TelegramBadRequest as e:
                logger.warning("the bot's menu for {} not set: {}", where, e)
                break
            except AiogramError as e:
                if attempt == attempts:
                    logger.error("the bot's menu for {} not set: {}", where, e)
                    break
                logger.warning("setting the bot's menu failed ({}), retrying in {} s", e, delay)
                await asyncio.sleep(delay)
                delay *= 2


@dataclass(frozen=True)
class Connection:
    """The bot's side of Telegram and the payment providers, for work outside the bot's
    process (the admin's «check now» and refunds)."""

    bot: Bot | None  # None without TELEGRAM_API_TOKEN
    providers: dict[ProviderName, PaymentProvider]
    notify: BillNotifier  # tells a bill's owner, as the bill jobs would


@asynccontextmanager
async def connect(*, providers: Iterable[str]) -> AsyncIterator[Connection]:
    """The bot as the settings make it and the named providers, enabled or not
    (Telegram's only with a token), closed on leaving."""
    bot = None
    if settings.TELEGRAM_API_TOKEN:
        bot = build_bot(token=settings.TELEGRAM_API_TOKEN, api_server=settings.TELEGRAM_API_SERVER)
    wanted = {ProviderName(name) for name in providers}
    if bot is None:
        wanted.discard(ProviderName.TELEGRAM)
    made: dict[ProviderName, PaymentProvider] = {}
    try:
        made = providers_from_settings(bot, names=wanted)
        yield Connection(bot=bot, providers=made, notify=BillNotifier(bot))
    finally:
        for provider in made.values():
            await provider.close()
        if bot is not None:
            await bot.session.close()
