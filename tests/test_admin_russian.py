"""The admin in Russian (issue 13): every model's phrases in the right case and number,
the product's name in the header, one money format, the search ignoring case in
Cyrillic on SQLite too, the favicon, and only the actions of the providers that are on.

Through Django's test client; the layout on a 1366 px screen is in test_admin_browser.py.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client

from backend.admin_names import NAMES
from backend.common.money import MAX_AMOUNT, money_format
from backend.payments import services
from backend.payments.models import Bill, LedgerEntry
from backend.users.models import TelegramUser
from backend.users.selectors import users_search

NBSP = "\u00a0"
USERS = "/admin/users/telegramuser/"
BILLS = "/admin/payments/bill/"
LEDGER = "/admin/payments/ledgerentry/"


@pytest.fixture
def boss(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def text(response) -> str:
    """The page's text, tags dropped and spaces squeezed (a no-break space stays)."""
    page = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"[ \t\r\n]+", " ", html.unescape(page))


def messages(response) -> list[str]:
    """The messages over the page, as read."""
    found = re.findall(r'<li class="[a-z]+">(.*?)</li>', response.content.decode(), re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", message)).strip() for message in found]


def paginator(response) -> str:
    html = response.content.decode()
    start = html.index('<p class="paginator">')
    return " ".join(re.sub(r"<[^>]+>", " ", html[start : html.index("</p>", start)]).split())


def heading(response) -> str:
    match = re.search(r"<h1>(.*?)</h1>", response.content.decode(), re.S)
    assert match, "no <h1>"
    return match.group(1).strip()


def bills_of(count: int) -> None:
    user = TelegramUser.objects.create(telegram_id=5000 + count, first_name="Ёлка")
    for _ in range(count):
        services.bill_create(user=user, amount=Decimal("10"), lifetime=timedelta(minutes=5))


# --- names ----------------------------------------------------------------------------


def test_every_model_the_admin_shows_has_its_russian_names():
    """A model registered without its names would fall back to Django's phrases, which
    put the noun in the wrong case («Изменить пользователь Telegram»)."""
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered <= set(NAMES), registered - set(NAMES)


@pytest.mark.parametrize(
    ("count", "words"),
    [(1, "1 счёт"), (3, "3 счёта"), (5, "5 счетов"), (11, "11 счетов"), (21, "21 счёт")],
)
def test_the_counter_takes_the_russian_plural(boss, count, words):
    bills_of(count)
    assert paginator(boss.get(BILLS)) == words


@pytest.mark.parametrize(
    ("model", "forms"),
    [
        ("users.telegramuser", ("пользователь Telegram", "пользователя Telegram",
                                "пользователей Telegram")),
        ("payments.ledgerentry", ("запись журнала баланса", "записи журнала баланса",
                                  "записей журнала баланса")),
        ("auth.user", ("пользователь", "пользователя", "пользователей")),
        ("auth.group", ("группа", "группы", "групп")),
        ("otp_totp.totpdevice", ("TOTP-устройство", "TOTP-устройства", "TOTP-устройств")),
        ("axes.accessattempt", ("попытка входа", "попытки входа", "попыток входа")),
        ("axes.accesslog", ("запись журнала входов", "записи журнала входов",
                            "записей журнала входов")),
        ("axes.accessfailurelog", ("неудачный вход", "неудачных входа", "неудачных входов")),
        ("broadcasts.broadcast", ("рассылка", "рассылки", "рассылок")),
        ("broadcasts.delivery", ("доставка", "доставки", "доставок")),
    ],
)  # fmt: skip
def test_each_model_counts_in_three_forms(db, model, forms):
    names = NAMES[model]
    assert (names.counted(1), names.counted(2), names.counted(5)) == tuple(
        f"{n} {form}" for n, form in zip((1, 2, 5), forms, strict=True)
    )
    assert names.counted(22, "22") == f"22 {forms[1]}"


def test_list_titles_counters_and_select_all(boss):
    """«9 журнал баланса» and «Выбрать все пользователи Telegram» were Django's."""
    user = TelegramUser.objects.create(telegram_id=42, first_name="Ёлка")
    for _ in range(9):
        services.balance_adjust(user=user, amount=Decimal("1"), reason="тест")
    ledger = boss.get(LEDGER)
    assert heading(ledger) == "Записи журнала баланса"
    assert paginator(ledger) == "9 записей журнала баланса"
    assert "<title>Записи журнала баланса | Пополнение баланса</title>" in ledger.content.decode()

    users = boss.get(USERS)
    assert heading(users) == "Пользователи Telegram"
    assert paginator(users) == "1 пользователь Telegram"

    bills_of(2)
    bills = boss.get(BILLS, {"o": "1"})
    assert heading(bills) == "Счета"
    # «Select all» appears when a page shows fewer rows than the list has.
    admin.site._registry[Bill].list_per_page = 1
    try:
        page = text(boss.get(BILLS))
    finally:
        admin.site._registry[Bill].list_per_page = 100
    assert "Выбрать все счета (2)" in page

    groups = boss.get("/admin/auth/group/")
    assert heading(groups) == "Группы"
    assert "Добавить группу" in text(groups)  # the button over the list


def test_add_change_and_view_titles_are_in_the_accusative(boss):
    user = TelegramUser.objects.create(telegram_id=42, first_name="Ёлка")
    page = boss.get(f"{USERS}{user.pk}/change/")
    assert heading(page) == "Изменить пользователя Telegram"
    assert "Изменить пользователя Telegram | Пополнение баланса" in page.content.decode()

    services.balance_adjust(user=user, amount=Decimal("150"), reason="тест")
    entry = LedgerEntry.objects.get(user=user)
    assert heading(boss.get(f"{LEDGER}{entry.pk}/change/")) == "Просмотреть запись журнала баланса"
    bill = services.bill_create(user=user, amount=Decimal("10"), lifetime=timedelta(minutes=5))
    assert heading(boss.get(f"{BILLS}{bill.pk}/change/")) == "Просмотреть счёт"

    add_user = boss.get("/admin/auth/user/add/")
    assert heading(add_user) == "Добавить пользователя"
    assert "› Добавить пользователя" in text(add_user)  # the breadcrumbs
    assert heading(boss.get("/admin/auth/group/add/")) == "Добавить группу"


def test_saving_and_deleting_say_so_in_good_russian(boss):
    response = boss.post("/admin/auth/group/add/", {"name": "Бухгалтерия"}, follow=True)
    assert "Добавлено: группа «Бухгалтерия»." in messages(response)
    group = Group.objects.get(name="Бухгалтерия")

    response = boss.post(f"/admin/auth/group/{group.pk}/change/", {"name": "Касса"}, follow=True)
    assert "Изменения сохранены: группа «Касса»." in messages(response)

    confirm = boss.get(f"/admin/auth/group/{group.pk}/delete/")
    assert "Вы уверены, что хотите удалить «Касса» (группа)?" in text(confirm)
    response = boss.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}, follow=True)
    assert "Удалено: группа «Касса»." in messages(response)

    Group.objects.bulk_create([Group(name="А"), Group(name="Б")])
    changelist = boss.get("/admin/auth/group/")
    actions = dict(changelist.context["action_form"].fields["action"].choices)
    assert actions["delete_selected"] == "Удалить выбранные группы"
    selected = list(Group.objects.values_list("pk", flat=True))
    data = {"action": "delete_selected", "_selected_action": selected}
    assert "выбранные объекты (группы)" in text(boss.post("/admin/auth/group/", data))
    done = boss.post("/admin/auth/group/", {**data, "post": "yes"}, follow=True)
    assert "Удалено объектов: 2 (группы)." in messages(done)

    users = boss.get("/admin/auth/user/")
    actions = dict(users.context["action_form"].fields["action"].choices)
    assert actions["delete_selected"] == "Удалить выбранных пользователей"


def test_the_axes_and_otp_sections_have_russian_names(boss):
    AccessAttempt.objects.create(
        username="x", ip_address="127.0.0.1", failures_since_start=5, get_data="", post_data=""
    )
    index = text(boss.get("/admin/"))
    for words in ("Защита входа", "Попытки входа", "Записи журнала входов", "Неудачные входы"):
        assert words in index
    assert "Двухфакторный вход" in index and "TOTP-устройства" in index
    assert "Otp_Totp" not in index and "Axes" not in index
    page = boss.get("/admin/axes/accessattempt/")
    assert paginator(page) == "1 попытка входа"
    assert "Фильтр" in text(page) and " По " not in text(page)  # «По …» wanted a case


# --- the product's name ---------------------------------------------------------------


def test_the_header_title_and_index_name_the_product(boss, settings):
    index = boss.get("/admin/")
    html = index.content.decode()
    assert "Администрирование Django" not in html and "Django" not in text(index)
    assert '<div id="site-name"><a href="/admin/">Пополнение баланса</a></div>' in html
    assert "<title>Пополнение баланса: администрирование | Пополнение баланса</title>" in html

    settings.ADMIN_SITE_TITLE = "Бот «Копилка»"
    html = boss.get("/admin/").content.decode()
    assert "Бот «Копилка»</a></div>" in html
    assert "<h1>Бот «Копилка»: администрирование</h1>" in html
    login = Client().get("/admin/login/").content.decode()
    assert "Бот «Копилка»" in login and "Django" not in re.sub(r"<[^>]+>", "", login)


# --- money ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "signed", "shown"),
    [
        ("1000.5", False, "1 000,50 ₽"),
        ("0", True, "0,00 ₽"),
        ("150", True, "+150,00 ₽"),
        ("-50.5", True, "-50,50 ₽"),
        (str(MAX_AMOUNT), False, "999 999 999 999,99 ₽"),
    ],
)
def test_money_format(amount, signed, shown):
    assert money_format(Decimal(amount), signed=signed) == shown.replace(" ", NBSP)


def test_one_money_format_on_every_page_and_message(boss):
    user = TelegramUser.objects.create(telegram_id=42, username="ivan", first_name="Иван")
    services.balance_adjust(user=user, amount=Decimal("1000.5"), reason="начальный")
    bill = services.bill_create(user=user, amount=Decimal("1500"), lifetime=timedelta(minutes=5))
    entry = LedgerEntry.objects.get(user=user)

    for url in (USERS, f"{USERS}{user.pk}/change/", f"{USERS}{user.pk}/adjust/", LEDGER):
        assert f"1{NBSP}000,50{NBSP}₽" in text(boss.get(url)), url
    page = text(boss.get(f"{USERS}{user.pk}/change/"))
    assert f"Корректировка +1{NBSP}000,50{NBSP}₽" in page  # the ledger row's caption
    assert f"{bill.pk}: 1{NBSP}500,00{NBSP}₽, создаётся" in page  # the bill row's caption
    assert "(adjustment)" not in page and "RUB NEW" not in page
    assert f"1{NBSP}500,00{NBSP}₽" in text(boss.get(BILLS))
    assert str(entry) == f"Корректировка +1{NBSP}000,50{NBSP}₽"
    assert str(bill) == f"{bill.pk}: 1{NBSP}500,00{NBSP}₽, создаётся"

    form = boss.get(f"{USERS}{user.pk}/adjust/").context["form"]
    data = {
        "amount": "-0,5",
        "reason": "округление",
        "seen_balance": "1000.50",
        "key": form["key"].value(),
    }
    done = boss.post(f"{USERS}{user.pk}/adjust/", data, follow=True)
    assert f"Баланс изменён на -0,50{NBSP}₽, теперь 1{NBSP}000,00{NBSP}₽." in messages(done)


@pytest.mark.parametrize("field", ["amount", "set_to"])
@pytest.mark.parametrize("typed", ["1e3", "1E3", "1_000", "1000.001"])
def test_the_balance_form_takes_plain_decimals_only(boss, field, typed):
    user = TelegramUser.objects.create(telegram_id=42, first_name="Иван")
    form = boss.get(f"{USERS}{user.pk}/adjust/").context["form"]
    data = {field: typed, "reason": "x", "seen_balance": "0.00", "key": form["key"].value()}
    response = boss.post(f"{USERS}{user.pk}/adjust/", data)
    assert response.status_code == 200
    assert "Введите сумму цифрами 0–9" in text(response)
    assert TelegramUser.objects.get(pk=user.pk).balance == 0


# --- search ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("ёлка", True),
        ("ЁЛКА", True),
        ("Ёл", True),
        ("щук", True),
        ("ЩУКИНА", True),
        ("елка", False),
    ],
)
def test_the_users_search_ignores_case_in_cyrillic_on_every_database(boss, term, found):
    """«ё» and «е» stay different letters (backend/common/casefold.py)."""
    TelegramUser.objects.create(telegram_id=77, first_name="Ёлка", last_name="Щукина")
    TelegramUser.objects.create(telegram_id=78, first_name="Иван", username="ivan")
    listed = [u.telegram_id for u in boss.get(USERS, {"q": term}).context["cl"].result_list]
    assert listed == ([77] if found else [])


# --- the favicon ----------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_visit_logs_no_warning_for_the_favicon(boss):
    records = Records()
    logger = logging.getLogger("django")
    logger.addHandler(records)
    try:
        page = boss.get("/admin/").content.decode()
        icon = boss.get("/favicon.ico")
    finally:
        logger.removeHandler(records)
    assert '<link rel="icon" href="/static/site/favicon.svg" type="image/svg+xml">' in page
    assert icon.status_code == 301 and icon["Location"] == "/static/site/favicon.svg"
    assert [r.getMessage() for r in records.records if r.levelno >= logging.WARNING] == []


# --- actions of the providers that are on ---------------------------------------------


@pytest.mark.parametrize(
    ("providers", "refund"),
    [(["qiwi"], False), (["telegram"], True), (["qiwi", "telegram"], True)],
)
def test_the_bills_list_offers_a_refund_only_with_telegram_payments_on(
    boss, settings, providers, refund
):
    settings.PAYMENT_PROVIDERS = providers
    actions = boss.get(BILLS).context["action_form"].fields["action"].choices
    names = [name for name, _ in actions if name]
    assert "check_now" in names  # any provider's bills can be checked
    assert ("refund" in names) is refund
    assert ("Вернуть оплату в Telegram Stars" in dict(actions).values()) is refund


def test_each_database_searches_with_its_own_case_insensitive_sql(db):
    sql = str(users_search(queryset=TelegramUser.objects.all(), term="ёлка").query)
    if connection.vendor == "postgresql":  # the expression of migration 0004's indexes
        assert 'UPPER("users_telegramuser"."username"::text) LIKE UPPER(' in sql
    elif connection.vendor == "mysql":  # the plain column: its collation ignores case
        assert "`users_telegramuser`.`username` LIKE ёлка%" in sql
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT collation_name FROM information_schema.columns WHERE table_schema = "
                "DATABASE() AND table_name = 'users_telegramuser' AND column_name = 'username'"
            )
            assert cursor.fetchone()[0] in ("utf8mb4_uca1400_as_ci", "utf8mb4_0900_as_ci")
    else:
        assert 'casefold("users_telegramuser"."username") LIKE casefold(' in sql
