"""Every text the bot sends, in one place. Texts are HTML (the bot's parse mode):
anything a user wrote goes through `quote` before it lands here."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from aiogram.utils.text_decorations import html_decoration

from backend.payments.providers.base import Quote
from backend.payments.vocabulary import STARS_CURRENCY, BillStatus, ProviderName

quote = html_decoration.quote

TOP_UP_BUTTON = "Пополнить баланс"
CANCEL_BUTTON = "Отмена"
CONFIRM_BUTTON = "Подтвердить"
PAY_LINK_BUTTON = "Ссылка на оплату счёта"
CHECK_BUTTON = "Прошёл ли платёж?"
BALANCE_BUTTON = "Мой баланс"

# The bot's menu (setMyCommands): everyone's, and the admins' in their own chats.
COMMANDS = {"start": "Начать сначала", "balance": "Мой баланс и последние операции"}
RECEIPT_COMMAND = {"receipt": "Почта или телефон для чеков"}
ADMIN_COMMAND = {"admin": "Ссылка на админку"}

ASK_AMOUNT = "Введите сумму, на которую вы хотите пополнить баланс"
SUPPORT = "Что-то пошло не так. Отчет отправлен в службу поддержки."
BILL_REJECTED = "Счёт отклонён, платёж не прошёл."
BILL_EXPIRED = "Срок оплаты счёта истёк, платёж не прошёл."
BILL_WAITING = "Платёж пока не прошёл: счёт ожидает оплаты."
BILL_UNKNOWN = "Статус счёта неизвестен ({status}). Ждём, пока счёт будет оплачен или истечёт."
BILL_NOT_FOUND = "Счёт не найден."
BILL_ALREADY_PAID = "Этот счёт уже оплачен."
BILL_ALREADY_CLOSED = "Этот счёт уже закрыт."
CHECK_FAILED = "Не удалось проверить платёж. Попробуйте ещё раз через минуту."
CHOOSE_PAYMENT = "Как вы хотите оплатить?"
PAY_QIWI_BUTTON = "QIWI"
PAY_YOOKASSA_BUTTON = "Картой или СБП (ЮKassa)"
PAY_TELEGRAM_BUTTON = "Telegram"
PAY_STARS_BUTTON = "Telegram Stars"
PAYMENT_REFUSED_BLOCKED = "Оплата недоступна."
RECEIPT_EXAMPLES = "например: name@mail.ru или +7 916 123-45-67"
ASK_RECEIPT_CONTACT = (
    "По закону (54-ФЗ) после оплаты мы отправляем кассовый чек. Напишите электронную "
    f"почту или номер телефона, куда его прислать, — {RECEIPT_EXAMPLES}.\n"
    "Спросим только один раз; изменить адрес можно командой /receipt."
)
BAD_RECEIPT_CONTACT = (
    "Это не похоже на адрес электронной почты или российский номер телефона. "
    f"Напишите ещё раз, {RECEIPT_EXAMPLES}, или нажмите «Отмена»."
)
RECEIPTS_OFF = "Почта или телефон для чеков здесь не нужны."
# Why a payment is refused at the pre-checkout (selectors.bill_payable_error's codes).
PAYMENT_REFUSED = {
    "not_found": "Счёт не найден.",
    "not_yours": "Этот счёт выставлен другому пользователю.",
    "closed": "Счёт уже оплачен или закрыт. Создайте новый.",
    "expired": "Срок оплаты счёта истёк. Создайте новый.",
    "mismatch": "Сумма или валюта не совпадают со счётом. Создайте новый.",
}


def money(amount: Decimal) -> str:
    """1234.50 → «1 234,50 ₽»; whole amounts without kopecks."""
    whole = amount == amount.to_integral_value()
    text = f"{amount:,.0f}" if whole else f"{amount:,.2f}"
    return text.replace(",", " ").replace(".", ",") + " ₽"


def greeting(first_name: str) -> str:
    return (
        f"Привет, {quote(first_name)}\n"
        "Я - бот для пополнения баланса.\n"
        "Нажмите на кнопку, чтобы пополнить баланс"
    )


_LEDGER_KINDS = {"topup": "Пополнение", "refund": "Возврат", "adjustment": "Корректировка"}


def statement(balance: Decimal, entries: Iterable[tuple[datetime, str, Decimal]]) -> str:
    """/balance: the balance, then the last changes as (local time, kind, amount)."""
    lines = [f"Ваш баланс: {money(balance)}"]
    rows = [
        f"{when:%d.%m.%Y %H:%M} · {_LEDGER_KINDS.get(kind, kind)} {signed_money(amount)}"
        for when, kind, amount in entries
    ]
    lines += ["", "Последние операции:", *rows] if rows else ["", "Операций пока не было."]
    return "\n".join(lines)


def signed_money(amount: Decimal) -> str:
    """+150 ₽, −50 ₽ (a true minus sign)."""
    return ("+" if amount > 0 else "−") + money(abs(amount))


def notice(kind: str, amount: Decimal, balance: Decimal, reason: str = "") -> str:
    """A change of the balance the user did not make: a refund, an admin's correction
    (`reason` only when the admin chose to show it)."""
    if kind == "refund":
        lines = [f"Оплата возвращена: {signed_money(amount)}."]
    else:
        lines = [f"Баланс изменён администратором: {signed_money(amount)}."]
    if reason:
        lines.append(f"Причина: {quote(reason)}")
    lines.append(f"Ваш баланс: {money(balance)}")
    return "\n".join(lines)


def bad_amount(minimum: Decimal, maximum: Decimal) -> str:
    return (
        "Сумма должна быть целым числом рублей "
        f"от {money(minimum)} до {money(maximum)}, например: 500.\n"
        "Отправьте сумму ещё раз или нажмите «Отмена»."
    )


def confirm_amount(amount: Decimal) -> str:
    return f"Пополнить баланс на {money(amount)}?"


_CLOSED_BILL_BUTTONS = {
    BillStatus.PAID: "✅ Счёт оплачен",
    BillStatus.REJECTED: "Счёт отклонён",
    BillStatus.EXPIRED: "Срок оплаты истёк",
    BillStatus.REFUNDING: "Оплата возвращается",
    BillStatus.REFUNDED: "Оплата возвращена",
}


def closed_bill_button(status: str) -> str:
    """What a closed bill's message says on its one button instead of the pay link."""
    return _CLOSED_BILL_BUTTONS.get(status, "Счёт закрыт")


def duration(lifetime: timedelta) -> str:
    """A bill's lifetime as people read it: «5 мин.», «1 ч 30 мин.», under a minute «45 сек.»."""
    seconds = max(1, int(lifetime.total_seconds()))
    if seconds < 60:
        return f"{seconds} сек."
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes} мин."
    return f"{hours} ч {minutes} мин." if minutes else f"{hours} ч"


def bill_created(amount: Decimal, lifetime: timedelta) -> str:
    return (
        f"Счёт на {money(amount)} создан. Оплатите его в течение {duration(lifetime)} "
        "по ссылке ниже, затем нажмите «Прошёл ли платёж?»."
    )


def bill_paid(amount: Decimal, balance: Decimal) -> str:
    return f"Платёж прошёл успешно: +{money(amount)}.\nВаш баланс: {money(balance)}"


def bill_unknown(status: str) -> str:
    return BILL_UNKNOWN.format(status=quote(status))


def too_many_open_bills(count: int) -> str:
    return (
        f"У вас уже есть неоплаченные счета ({count}). Оплатите их или дождитесь, "
        "пока они закроются, и попробуйте снова."
    )


def admin_link(url: str) -> str:
    return f"Админ-панель: {quote(url)}"


def support_report(where: str, error: str) -> str:
    return f"⚠️ Ошибка: {quote(where)}\n{quote(error)}"


def payment_refused(code: str) -> str:
    return PAYMENT_REFUSED.get(code, PAYMENT_REFUSED["closed"])


def stars(count: int) -> str:
    return f"{count:,} ⭐".replace(",", " ")


def invoice_description(amount: Decimal, price: str, lifetime: timedelta) -> str:
    """The invoice's own text (plain, up to 255 characters): both figures."""
    return f"{money(amount)} на баланс бота, к оплате {price}. Счёт действует {duration(lifetime)}"


def price(quote: Quote) -> str:
    """What a provider asks: «100 ⭐», «1 000 ₽», «12,50 USD»."""
    if quote.currency == STARS_CURRENCY:
        return stars(quote.total)
    if quote.currency == "RUB":
        return money(quote.amount)
    return money(quote.amount).removesuffix(" ₽") + f" {quote.currency}"


def to_pay(price: str) -> str:
    return f"К оплате: {price}."


def pay_button(provider: ProviderName, *, currency: str) -> str:
    if provider == ProviderName.QIWI:
        return PAY_QIWI_BUTTON
    if provider == ProviderName.YOOKASSA:
        return PAY_YOOKASSA_BUTTON
    return PAY_STARS_BUTTON if currency == STARS_CURRENCY else PAY_TELEGRAM_BUTTON


def choose_payment(amount: Decimal, prices: list[str]) -> str:
    lines = "\n".join(prices)
    return f"Пополнение баланса на {money(amount)}. {CHOOSE_PAYMENT}\n{lines}"


def receipt_contact(contact: str) -> str:
    """A stored contact as people read it: the e-mail, or the phone with its +."""
    return quote(contact if "@" in contact else f"+{contact}")


def receipt_contact_saved(contact: str) -> str:
    return f"Готово: чеки будут приходить на {receipt_contact(contact)}. Изменить — /receipt."


def receipt_contact_change(contact: str) -> str:
    return (
        f"Сейчас чеки приходят на {receipt_contact(contact)}. Чтобы изменить, напишите "
        f"новую почту или телефон — {RECEIPT_EXAMPLES}, или нажмите «Отмена»."
    )
