"""The bot's session sends what aiogram's own would: the same url-encoded bytes for a
request without files (it skips aiohttp's FormData), aiogram's multipart for one with
files, and a broadcast's prepared message as `send_message` would send it."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.enums import ParseMode
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    SendDocument,
    SendInvoice,
    SendMessage,
    SetMyCommands,
)
from aiogram.types import BotCommand, BufferedInputFile, LabeledPrice
from aiohttp import FormData

from backend.bot import client, keyboards
from tests.constants import TOKEN


class Sink:
    """Collects what aiohttp would write of a payload."""

    def __init__(self) -> None:
        self.data = b""

    async def write(self, chunk: bytes) -> None:
        self.data += bytes(chunk)


async def body(payload) -> tuple[bytes, str]:
    if isinstance(payload, FormData):
        payload = payload()
    sink = Sink()
    await payload.write(sink)
    return sink.data, payload.content_type


def bot_with(session) -> Bot:
    default = DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)
    return Bot(TOKEN, session=session, default=default)


METHODS = [
    SendMessage(chat_id=7001, text="Привет, <b>Ёлка</b> & co", reply_markup=keyboards.start()),
    SendMessage(chat_id=-100123, text="a+b=c; 100%", disable_notification=True),
    AnswerCallbackQuery(callback_query_id="42", text="Готово", show_alert=False),
    EditMessageText(chat_id=7001, message_id=5, text="Счёт оплачен", reply_markup=None),
    SendInvoice(
        chat_id=7001,
        title="Пополнение баланса",
        description="100 ₽",
        payload="bill-1",
        currency="XTR",
        prices=[LabeledPrice(label="100 ₽", amount=67)],
    ),
    SetMyCommands(commands=[BotCommand(command="start", description="Начать")]),
]


async def test_requests_without_files_are_the_bytes_aiogram_sends():
    ours, theirs = client.BotSession(), AiohttpSession()
    bot_ours, bot_theirs = bot_with(ours), bot_with(theirs)
    try:
        for method in METHODS:
            sent = await body(ours.build_form_data(bot_ours, method))
            expected = await body(theirs.build_form_data(bot_theirs, method))
            assert sent == expected, method.__api_method__
            assert sent[1] == "application/x-www-form-urlencoded"
    finally:
        await ours.close()
        await theirs.close()


async def test_a_request_with_a_file_is_multipart_as_aiogram_makes_it():
    session = client.BotSession()
    bot = bot_with(session)
    try:
        method = SendDocument(chat_id=7001, document=BufferedInputFile(b"x;y\n", "users.csv"))
        form = session.build_form_data(bot, method)
        assert isinstance(form, FormData)
        data, content_type = await body(form)
        assert content_type.startswith("multipart/form-data")
        assert b'filename="users.csv"' in data and b"x;y\n" in data
    finally:
        await session.close()


async def test_a_prepared_message_is_what_send_message_sends():
    ours, theirs = client.BotSession(), AiohttpSession()
    bot_ours, bot_theirs = bot_with(ours), bot_with(theirs)
    try:
        markup = keyboards.link("Открыть", "https://example.com/a?b=1&c=2")
        prepared = client.prepare_message(bot_ours, "<b>Новости</b> & всё", markup)
        sent = await body(ours.build_form_data(bot_ours, prepared.to(9001)))
        method = SendMessage(chat_id=9001, text="<b>Новости</b> & всё", reply_markup=markup)
        assert sent == await body(theirs.build_form_data(bot_theirs, method))
    finally:
        await ours.close()
        await theirs.close()
