"""The top-up dialog: the amount, the confirmation, the way to pay, the e-mail or phone
for fiscal receipts (asked once, changed by /receipt), the bill's message and its check
button. Issuing and checking a bill are `backend.payments.flows`; this module only talks
to the user."""

from contextlib import suppress
from decimal import Decimal

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from loguru import logger

from backend.bot import client, keyboards, texts
from backend.bot.callbacks import CheckBill, Confirm, PayWith, TopUp
from backend.bot.config import BotConfig
from backend.bot.states import TopUpStates
from backend.common import metrics
from backend.payments import selectors, services
from backend.payments.amounts import amount_parse
from backend.payments.flows import BillNotIssued, bill_check, bill_issue
from backend.payments.models import Bill
from backend.payments.providers.base import PaymentProvider, PolledProvider, ProviderError
from backend.payments.receipts import ReceiptContactError
from backend.payments.vocabulary import ProviderName
from backend.users.models import TelegramUser
from backend.users.services import auser_set_receipt_contact

Providers = dict[ProviderName, PaymentProvider]


async def ask_amount(callback: CallbackQuery, bot: Bot, state: FSMContext) -> None:
    await callback.answer()
    await state.set_state(TopUpStates.waiting_amount)
    await bot.send_message(callback.from_user.id, texts.ASK_AMOUNT, reply_markup=keyboards.cancel())


async def got_amount(message: Message, config: BotConfig, providers: Providers) -> None:
    amount = amount_parse(message.text, minimum=config.min_amount, maximum=config.max_amount)
    if amount is None:
        await message.answer(
            texts.bad_amount(config.min_amount, config.max_amount), reply_markup=keyboards.cancel()
        )
        return
    text = texts.confirm_amount(Decimal(amount))
    if len(providers) == 1:
        [provider] = providers.values()
        quote = provider.quote(amount=Decimal(amount))
        if quote.currency != "RUB":
            text += "\n" + texts.to_pay(texts.price(quote))
    await message.answer(text, reply_markup=keyboards.confirm(amount))


async def confirm(
    callback: CallbackQuery,
    callback_data: Confirm,
    bot: Bot,
    state: FSMContext,
    db_user: TelegramUser,
    providers: Providers,
    config: BotConfig,
) -> None:
    amount = Decimal(callback_data.amount)
    await callback.answer()
    if not config.min_amount <= amount <= config.max_amount:
        return  # a forged button: the amount was checked when the button was made
    await state.clear()
    await _drop_buttons(callback)  # one bill per confirmation
    if len(providers) == 1:
        [provider] = providers.values()
        await _issue_bill_or_ask_contact(bot, state, db_user, provider, config, amount)
        return
    choices, prices = [], []
    for name, provider in providers.items():
        quote = provider.quote(amount=amount)
        choices.append((name, texts.pay_button(name, currency=quote.currency)))
        prices.append(f"{choices[-1][1]}: {texts.price(quote)}")
    await bot.send_message(
        callback.from_user.id,
        texts.choose_payment(amount, prices),
        reply_markup=keyboards.pay_with(int(amount), choices),
    )


async def pay_with(
    callback: CallbackQuery,
    callback_data: PayWith,
    bot: Bot,
    state: FSMContext,
    db_user: TelegramUser,
    providers: Providers,
    config: BotConfig,
) -> None:
    amount = Decimal(callback_data.amount)
    await callback.answer()
    provider = providers.get(callback_data.provider)
    if provider is None or not config.min_amount <= amount <= config.max_amount:
        return  # a forged button, or a way to pay switched off since
    await _drop_buttons(callback)  # one bill per choice
    await _issue_bill_or_ask_contact(bot, state, db_user, provider, config, amount)


async def _issue_bill_or_ask_contact(
    bot: Bot,
    state: FSMContext,
    db_user: TelegramUser,
    provider: PaymentProvider,
    config: BotConfig,
    amount: Decimal,
) -> None:
    """The bill; or first, when its receipt needs the user's e-mail or phone and none is
    kept yet, the question (the top-up waits for the answer in the dialog's data)."""
    if not provider.needs_receipt_contact or db_user.receipt_contact:
        await _issue_bill(bot, db_user, provider, config, amount)
        return
    await state.set_state(TopUpStates.waiting_receipt_contact)
    await state.set_data({"amount": int(amount), "provider": provider.name.value})
    await bot.send_message(
        db_user.telegram_id, texts.ASK_RECEIPT_CONTACT, reply_markup=keyboards.cancel()
    )


async def got_receipt_contact(
    message: Message,
    bot: Bot,
    state: FSMContext,
    db_user: TelegramUser,
    providers: Providers,
    config: BotConfig,
) -> None:
    """The answer to the question: kept when it is an e-mail or a Russian phone, and the
    top-up that waited for it goes on; anything else changes nothing and is asked again."""
    try:
        user = await auser_set_receipt_contact(
            telegram_id=db_user.telegram_id, contact=message.text or ""
        )
    except ReceiptContactError:
        await message.answer(texts.BAD_RECEIPT_CONTACT, reply_markup=keyboards.cancel())
        return
    logger.info("user {} set the e-mail or phone for receipts", user.telegram_id)
    waiting = await state.get_data()
    await state.clear()
    provider = providers.get(waiting.get("provider", ""))
    amount = Decimal(waiting.get("amount", 0))
    if provider is None or not config.min_amount <= amount <= config.max_amount:
        # /receipt alone, or a way to pay switched off meanwhile: nothing waits.
        await message.answer(
            texts.receipt_contact_saved(user.receipt_contact), reply_markup=keyboards.start()
        )
        return
    await message.answer(texts.receipt_contact_saved(user.receipt_contact))
    await _issue_bill(bot, user, provider, config, amount)


async def change_receipt_contact(
    message: Message, state: FSMContext, db_user: TelegramUser, providers: Providers
) -> None:
    """/receipt: asks for a new e-mail or phone (a top-up waiting for one still waits)."""
    if not any(provider.needs_receipt_contact for provider in providers.values()):
        await message.answer(texts.RECEIPTS_OFF, reply_markup=keyboards.start())
        return
    await state.set_state(TopUpStates.waiting_receipt_contact)
    text = (
        texts.receipt_contact_change(db_user.receipt_contact)
        if db_user.receipt_contact
        else texts.ASK_RECEIPT_CONTACT
    )
    await message.answer(text, reply_markup=keyboards.cancel())


async def _drop_buttons(callback: CallbackQuery) -> None:
    if isinstance(callback.message, Message):
        with suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)


async def _issue_bill(
    bot: Bot,
    db_user: TelegramUser,
    provider: PaymentProvider,
    config: BotConfig,
    amount: Decimal,
) -> None:
    chat_id = db_user.telegram_id
    price = texts.price(provider.quote(amount=amount))
    try:
        bill = await bill_issue(
            provider=provider,
            user=db_user,
            amount=amount,
            lifetime=config.bill_lifetime,
            max_open=config.max_open_bills,
            comment=texts.invoice_description(amount, price, config.bill_lifetime),
        )
    except services.TooManyOpenBills as e:
        await bot.send_message(chat_id, texts.too_many_open_bills(e.open_bills))
        return
    except BillNotIssued as e:
        logger.opt(exception=e.error).error("bill {} for user {} not created", e.bill.pk, chat_id)
        await bot.send_message(chat_id, texts.SUPPORT, reply_markup=keyboards.start())
        await client.report_to_admins(
            bot, config.admin_ids, f"счёт {e.bill.pk} не создан", str(e.error)
        )
        return
    if bill.pay_url:  # a payment page: the link and the check button
        message = await bot.send_message(
            chat_id,
            texts.bill_created(bill.amount, config.bill_lifetime),
            reply_markup=keyboards.bill(bill.pay_url, bill.pk),
        )
        bill = await services.abill_set_message(bill_id=bill.pk, message_id=message.message_id)
        await client.close_bill_message(bot, bill)  # closed meanwhile: no link to offer
    # Otherwise the provider has put its payment form into the chat itself (an invoice).


async def check(
    callback: CallbackQuery,
    callback_data: CheckBill,
    bot: Bot,
    providers: Providers,
) -> None:
    chat_id = callback.from_user.id
    bill = await selectors.abill_get_for_user(bill_id=callback_data.bill_id, telegram_id=chat_id)
    provider = providers.get(bill.provider) if bill is not None else None
    if bill is None or not isinstance(provider, PolledProvider):
        await callback.answer(texts.BILL_NOT_FOUND)
        return
    if not bill.is_open and bill.status not in Bill.LATE_PAYABLE:
        text, _ = client.transition_message(services.BillTransition(bill=bill, changed=False))
        await callback.answer(text)
        await client.close_bill_message(bot, bill)
        return
    try:
        transition = await bill_check(provider=provider, bill=bill)
    except ProviderError as e:
        logger.warning("bill {}: check at the provider failed: {}", bill.pk, e)
        await callback.answer()
        await bot.send_message(chat_id, texts.CHECK_FAILED)
        return
    metrics.bill_transition(transition)
    text, markup = client.transition_message(transition)
    if not transition.changed and not transition.bill.is_open:
        await callback.answer(text)  # the poller got there first and has told the user
        await client.close_bill_message(bot, transition.bill)
        return
    await callback.answer()
    await bot.send_message(chat_id, text, reply_markup=markup)
    await client.close_bill_message(bot, transition.bill)


def build_router() -> Router:
    router = Router(name="topup")
    router.callback_query.register(ask_amount, TopUp.filter())
    router.message.register(got_amount, TopUpStates.waiting_amount)
    router.callback_query.register(confirm, Confirm.filter())
    router.callback_query.register(pay_with, PayWith.filter())
    router.callback_query.register(check, CheckBill.filter())
    router.message.register(got_receipt_contact, TopUpStates.waiting_receipt_contact)
    return router


def build_commands_router() -> Router:
    """/receipt, in any state of the dialog: before the start router, whose «anything
    else» would take it for a greeting, and the amount prompt, for an amount."""
    router = Router(name="topup-commands")
    router.message.register(change_receipt_contact, Command("receipt"))
    return router
