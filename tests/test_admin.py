"""The django-admin through Django's test client: lists, search, filters, exports,
logs, balance adjustments, blocking and permissions."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from backend.payments import services
from backend.payments.models import Bill, LedgerEntry
from backend.users import admin as admin_module
from backend.users.models import TelegramUser
from tests.provider_words import bill_apply_qiwi_status

LIST_URL = "/admin/users/telegramuser/"
CSV_URL = LIST_URL + "export/csv/"
XLSX_URL = LIST_URL + "export/xlsx/"
LOGS_URL = LIST_URL + "logs/"


def make_user(telegram_id: int, balance: str = "0", **names) -> TelegramUser:
    user = TelegramUser.objects.create(telegram_id=telegram_id, **names)
    if Decimal(balance):
        services.balance_adjust(user=user, amount=Decimal(balance), reason="начальный баланс")
    user.refresh_from_db()
    return user


def paid_bill(user: TelegramUser, amount: str) -> Bill:
    bill = services.bill_create(user=user, amount=Decimal(amount), lifetime=timedelta(minutes=5))
    services.bill_mark_created(
        bill_id=bill.pk, pay_url="https://pay.example/x", provider_status="WAITING"
    )
    return bill


@pytest.fixture
def people(db) -> dict[str, TelegramUser]:
    return {
        "ivan": make_user(1001, "150.50", username="ivan", first_name="Иван", last_name="Петров"),
        "olga": make_user(1002, username="olga", first_name="Ольга", is_blocked=True),
        "evil": make_user(1003, "5", username="", first_name="=HYPERLINK(1)", last_name="+7"),
    }


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def listed_ids(response) -> list[int]:
    return [obj.telegram_id for obj in response.context["cl"].result_list]


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";"))


# --- the list ------------------------------------------------------------------------


def test_list_shows_users_newest_first_with_yellow_export_buttons(admin_client, people):
    response = admin_client.get(LIST_URL)
    assert response.status_code == 200
    assert listed_ids(response) == [1003, 1002, 1001]
    html = response.content.decode()
    for label in ("Выгрузить CSV", "Выгрузить Excel", "Логи"):
        assert label in html
    # a stylesheet of ours, as the Content-Security-Policy allows no inline style
    assert '<link rel="stylesheet" href="/static/users/admin.css">' in html
    stylesheet = Path(finders.find("users/admin.css")).read_text(encoding="utf-8")
    assert "a.export-button { background: #f7c600;" in stylesheet
    assert response.context["cl"].show_full_result_count is False


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1002", [1002]),
        ("@iva", [1001]),
        ("Оль", [1002]),
        ("Петр", [1001]),
        ("100", []),
        ("", [1003, 1002, 1001]),
    ],
)
def test_search_by_exact_id_or_start_of_names(admin_client, people, query, expected):
    assert listed_ids(admin_client.get(LIST_URL, {"q": query})) == expected


def test_filters_blocked_and_positive_balance(admin_client, people):
    assert listed_ids(admin_client.get(LIST_URL, {"is_blocked__exact": "1"})) == [1002]
    assert listed_ids(admin_client.get(LIST_URL, {"balance": "positive"})) == [1003, 1001]
    assert listed_ids(admin_client.get(LIST_URL, {"balance": "zero"})) == [1002]


def test_users_cannot_be_added_or_deleted_here(admin_client, people):
    assert admin_client.get(LIST_URL + "add/").status_code == 403
    user = people["ivan"]
    assert admin_client.get(f"{LIST_URL}{user.pk}/delete/").status_code == 403


# --- exports -------------------------------------------------------------------------


def test_csv_export_has_bom_all_users_and_neutralised_formulas(admin_client, people):
    response = admin_client.get(CSV_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="users-')
    rows = csv_rows(response)
    assert rows[0][:6] == ["Telegram ID", "Username", "Имя", "Фамилия", "Баланс", "Заблокирован"]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["1001"][2:6] == ["Иван", "Петров", "150,50", "Нет"]
    assert by_id["1002"][5] == "Да"
    assert by_id["1003"][2:5] == ["'=HYPERLINK(1)", "'+7", "5,00"]


def test_exports_follow_the_lists_search_and_filters(admin_client, people):
    assert [r[0] for r in csv_rows(admin_client.get(CSV_URL, {"q": "@olg"}))[1:]] == ["1002"]
    filtered = csv_rows(
        admin_client.get(CSV_URL, {"balance": "positive", "is_blocked__exact": "0"})
    )
    assert sorted(r[0] for r in filtered[1:]) == ["1001", "1003"]
    response = admin_client.get(XLSX_URL, {"q": "Ив"})
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 2 and rows[1][:5] == (1001, "ivan", "Иван", "Петров", 150.5)


def test_xlsx_export_keeps_texts_as_texts(admin_client, people):
    response = admin_client.get(XLSX_URL)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="users-')
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    cells = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    name = cells[1003][2]
    assert name.value == "=HYPERLINK(1)" and name.data_type == "s"  # shown, never run
    assert cells[1001][4].data_type == "n"  # the balance stays a number


# --- logs ----------------------------------------------------------------------------


@pytest.fixture
def log_folder(settings, tmp_path):
    settings.LOG_DIR = tmp_path
    (tmp_path / "bot.log").write_text("today\n", encoding="utf-8")
    (tmp_path / "bot.2026-11-01_00-00-00_000000.log").write_text("older\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    return tmp_path


def test_logs_are_listed_and_downloaded_by_name(admin_client, log_folder):
    page = admin_client.get(LOGS_URL)
    assert page.status_code == 200
    assert [f["name"] for f in page.context["files"]] and {
        f["name"] for f in page.context["files"]
    } == {
        "bot.log",
        "bot.2026-11-01_00-00-00_000000.log",
    }
    download = admin_client.get(LOGS_URL + "bot.log/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="bot.log"'
    assert b"".join(download.streaming_content) == b"today\n"


@pytest.mark.parametrize(
    "name", ["missing.log", "..", "sub", "%2e%2e%2fsettings.py", "..%2fbot.log", "bot.log%00"]
)
def test_only_files_of_the_listing_can_be_downloaded(admin_client, log_folder, name):
    response = admin_client.get(LOGS_URL + name + "/", follow=True)
    assert response.status_code == 404 or response.redirect_chain  # never a file
    assert "Content-Disposition" not in response
    assert b"today" not in response.content


def test_export_and_logs_need_their_permission(staff_client, people, log_folder):
    page = staff_client.get(LIST_URL)
    assert page.status_code == 200
    assert "Выгрузить CSV" not in page.content.decode()
    assert "Логи" not in page.content.decode()
    for url in (CSV_URL, XLSX_URL, LOGS_URL, LOGS_URL + "bot.log/"):
        assert staff_client.get(url).status_code == 403, url


def test_the_export_permission_alone_allows_exports(db, people, log_folder):
    staff = User.objects.create_user("accountant", password="pw", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_telegramuser", "export_users"])
    )
    client = Client()
    client.force_login(staff)
    assert client.get(CSV_URL).status_code == 200
    assert client.get(LOGS_URL).status_code == 403


# --- the user page, adjustments, blocking --------------------------------------------


def test_user_page_shows_ledger_and_bills_read_only(admin_client, people):
    user = people["ivan"]
    paid = paid_bill(user, "40")
    bill_apply_qiwi_status(bill_id=paid.pk, status="PAID", amount=paid.amount, currency="RUB")
    response = admin_client.get(f"{LIST_URL}{user.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "начальный баланс" in html and paid.pk in html
    assert "Изменить баланс" in html and "Заблокировать" in html
    assert 'name="balance"' not in html  # the balance is never a form field


def adjust(client: Client, user: TelegramUser, **data):
    """Post the adjustment form as a browser would: a fresh form's key, unless given."""
    url = f"{LIST_URL}{user.pk}/adjust/"
    if "key" not in data:
        data["key"] = client.get(url).context["form"]["key"].value()
    data.setdefault("reason", "компенсация")
    data.setdefault("seen_balance", str(user.balance))
    return client.post(url, data)


def test_adjustment_writes_a_ledger_row_with_admin_and_reason(admin_client, people):
    user = people["ivan"]
    response = adjust(admin_client, user, amount="-50.50")
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.balance == Decimal("100.00")
    entry = LedgerEntry.objects.filter(user=user).first()
    assert (entry.amount, entry.reason, entry.admin.username) == (
        Decimal("-50.50"),
        "компенсация",
        "boss",
    )
    assert LogEntry.objects.filter(
        object_id=str(user.pk), change_message__contains="компенсация"
    ).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "-200"}, "баланс не может стать отрицательным"),
        ({"amount": "10", "reason": " "}, "Обязательное поле."),
        ({}, "Укажите либо сумму изменения, либо новый баланс."),
        ({"amount": "5", "set_to": "10"}, "Укажите либо сумму изменения, либо новый баланс."),
        ({"amount": "0"}, "Сумма изменения не может быть нулевой."),
        ({"amount": "1.234"}, "не больше двух после запятой"),
        ({"set_to": "-1"}, "Сумма не может быть отрицательной."),
    ],
)
def test_bad_adjustments_are_explained_and_change_nothing(admin_client, people, data, message):
    user = people["ivan"]
    response = adjust(admin_client, user, **data)
    assert response.status_code == 200
    assert message in response.content.decode()
    user.refresh_from_db()
    assert user.balance == Decimal("150.50")
    assert LedgerEntry.objects.filter(user=user).count() == 1


def test_set_to_is_refused_when_the_balance_changed_meanwhile(admin_client, people):
    user = people["ivan"]
    seen = user.balance
    bill = paid_bill(user, "100")
    bill_apply_qiwi_status(bill_id=bill.pk, status="PAID", amount=bill.amount, currency="RUB")
    response = adjust(admin_client, user, set_to="1000", seen_balance=str(seen))
    assert "баланс изменился" in response.content.decode()
    user.refresh_from_db()
    assert user.balance == Decimal("250.50")

    response = adjust(admin_client, user, set_to="1000")
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.balance == Decimal("1000.00")


def test_saving_the_user_form_never_writes_the_balance(admin_client, people):
    user = people["ivan"]
    form_page = admin_client.get(f"{LIST_URL}{user.pk}/change/")
    assert form_page.status_code == 200
    bill = paid_bill(user, "99")  # a top-up lands while the form is open
    bill_apply_qiwi_status(bill_id=bill.pk, status="PAID", amount=bill.amount, currency="RUB")
    response = admin_client.post(
        f"{LIST_URL}{user.pk}/change/",
        {
            "is_blocked": "on",
            "balance": "0",  # a forged field: ignored
            "ledger-TOTAL_FORMS": "0",
            "ledger-INITIAL_FORMS": "0",
            "bills-TOTAL_FORMS": "0",
            "bills-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert user.is_blocked
    assert user.balance == Decimal("249.50")


def test_block_and_unblock_buttons_and_bulk_actions(admin_client, people):
    user = people["ivan"]
    assert admin_client.get(f"{LIST_URL}{user.pk}/block/").status_code == 405
    assert admin_client.post(f"{LIST_URL}{user.pk}/block/").status_code == 302
    user.refresh_from_db()
    assert user.is_blocked
    admin_client.post(f"{LIST_URL}{user.pk}/unblock/")
    user.refresh_from_db()
    assert not user.is_blocked

    ids = [people["ivan"].pk, people["evil"].pk]
    response = admin_client.post(LIST_URL, {"action": "block_users", "_selected_action": ids})
    assert response.status_code == 302
    assert set(
        TelegramUser.objects.filter(is_blocked=True).values_list("telegram_id", flat=True)
    ) == {
        1001,
        1002,
        1003,
    }
    admin_client.post(LIST_URL, {"action": "unblock_users", "_selected_action": ids})
    assert list(
        TelegramUser.objects.filter(is_blocked=True).values_list("telegram_id", flat=True)
    ) == [1002]
    assert LogEntry.objects.filter(change_message="Заблокирован").count() == 3


def test_staff_without_change_permission_cannot_adjust_or_block(db, people):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_telegramuser"))
    client = Client()
    client.force_login(viewer)
    user = people["ivan"]
    assert client.get(f"{LIST_URL}{user.pk}/adjust/").status_code == 403
    assert client.post(f"{LIST_URL}{user.pk}/block/").status_code == 403
    response = client.post(LIST_URL, {"action": "block_users", "_selected_action": [user.pk]})
    user.refresh_from_db()
    assert not user.is_blocked and response.status_code in (200, 302)


@pytest.mark.django_db(transaction=True)
def test_an_adjustment_racing_a_top_up_loses_neither():
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw")
    user = make_user(1010, "10")
    bills = [paid_bill(user, "25") for _ in range(5)]
    start = threading.Barrier(len(bills) + 1)
    errors: list[BaseException] = []

    def run(work) -> None:
        try:
            start.wait()
            work()
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            connection.close()

    def adjust_in_admin() -> None:
        client = Client()
        client.force_login(boss)
        response = client.post(
            f"{LIST_URL}{user.pk}/adjust/",
            {"amount": "100", "reason": "бонус", "seen_balance": "10", "key": uuid.uuid4().hex},
        )
        assert response.status_code == 302

    def credit(bill: Bill):
        return lambda: bill_apply_qiwi_status(
            bill_id=bill.pk, status="PAID", amount=bill.amount, currency="RUB"
        )

    threads = [threading.Thread(target=run, args=(credit(b),)) for b in bills]
    threads.append(threading.Thread(target=run, args=(adjust_in_admin,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    user.refresh_from_db()
    assert user.balance == Decimal("235.00")  # 10 + 5 × 25 + 100
    assert sum(e.amount for e in LedgerEntry.objects.filter(user=user)) == user.balance


def test_admin_pages_exist_for_bills_and_ledger(admin_client, people):
    bill = paid_bill(people["ivan"], "70")
    response = admin_client.get(reverse("admin:payments_bill_changelist"), {"q": "1001"})
    assert [b.pk for b in response.context["cl"].result_list] == [bill.pk]
    response = admin_client.get(reverse("admin:payments_bill_changelist"), {"q": bill.pk})
    assert [b.pk for b in response.context["cl"].result_list] == [bill.pk]
    response = admin_client.get(reverse("admin:payments_ledgerentry_changelist"), {"q": "1001"})
    assert len(response.context["cl"].result_list) == 1
    assert admin_client.get(reverse("admin:payments_bill_add")).status_code == 403


def test_the_admin_speaks_english_with_language_code_en(admin_client, people, settings):
    settings.LANGUAGE_CODE = "en"
    page = admin_client.get(LIST_URL).content.decode()
    assert "Export CSV" in page and "Telegram users" in page and "Выгрузить" not in page
    user = people["ivan"]
    response = adjust(admin_client, user, amount="-1000")
    assert "the balance cannot go below zero" in response.content.decode()
    settings.LANGUAGE_CODE = "ru"
    page = admin_client.get(LIST_URL).content.decode()
    assert "Выгрузить CSV" in page and "Пользователи Telegram" in page


def test_amounts_take_a_decimal_comma_in_a_text_box(admin_client, people):
    user = people["ivan"]
    page = admin_client.get(f"{LIST_URL}{user.pk}/adjust/").content.decode()
    assert 'type="number"' not in page  # a number box would drop the comma
    assert adjust(admin_client, user, amount="-50,5").status_code == 302
    assert adjust(admin_client, user, amount="12.25").status_code == 302
    user.refresh_from_db()
    assert user.balance == Decimal("112.25")


def test_set_to_can_be_retried_after_the_balance_changed(admin_client, people):
    user = people["ivan"]
    stale = adjust(admin_client, user, set_to="1000", seen_balance="1.00")
    assert "баланс изменился" in stale.content.decode()
    form = stale.context["form"]
    assert form["seen_balance"].value() == "150.50"  # now the balance as it is
    retry = adjust(admin_client, user, set_to="1000", seen_balance=form["seen_balance"].value())
    assert retry.status_code == 302
    user.refresh_from_db()
    assert user.balance == Decimal("1000.00")


@pytest.mark.parametrize("query", [{"foo": "bar"}, {"is_blocked__exact": "maybe"}])
def test_exports_refuse_filters_the_list_does_not_know(admin_client, people, query):
    assert admin_client.get(CSV_URL, query).status_code == 400
    assert admin_client.get(XLSX_URL, query).status_code == 400


def test_user_page_shows_the_users_own_latest_rows_among_many_others(admin_client, people):
    ivan, evil = people["ivan"], people["evil"]
    for i in range(60):  # newer rows of someone else
        services.balance_adjust(user=evil, amount=Decimal(1), reason=f"чужая {i}")
    services.balance_adjust(user=ivan, amount=Decimal(2), reason="своя последняя")
    response = admin_client.get(f"{LIST_URL}{ivan.pk}/change/")
    ledger = response.context["inline_admin_formsets"][0].formset.queryset
    assert [e.reason for e in ledger] == ["своя последняя", "начальный баланс"]
    assert "чужая" not in response.content.decode()
    own = paid_bill(ivan, "3")
    for _ in range(55):
        paid_bill(evil, "1")
    response = admin_client.get(f"{LIST_URL}{ivan.pk}/change/")
    bills = response.context["inline_admin_formsets"][1].formset.queryset
    assert [b.pk for b in bills] == [own.pk]


# --- counting the list ---------------------------------------------------------------


@pytest.fixture
def twelve(db) -> list[TelegramUser]:
    return [
        TelegramUser.objects.create(telegram_id=2000 + i, username=f"many{i}", first_name="Иван")
        for i in range(12)
    ]


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of 2 users and a count capped at 5, so that a dozen users are "many"."""
    monkeypatch.setattr(admin_module.TelegramUserAdmin, "list_per_page", 2)
    monkeypatch.setattr(admin_module, "COUNT_CAP", 5)


def paginator_text(response) -> str:
    html = response.content.decode()
    return " ".join(html[html.index('<p class="paginator">') :].split("</p>")[0].split())


def test_small_lists_show_the_exact_count(admin_client, people):
    response = admin_client.get(LIST_URL)
    assert "3 пользователя Telegram" in paginator_text(response)
    response = admin_client.get(LIST_URL, {"q": "Ив"})
    assert "1 результат (" in response.content.decode()
    assert "1 пользователь Telegram" in paginator_text(response)


def test_a_long_filtered_list_counts_up_to_the_cap_and_still_pages(
    admin_client, twelve, small_pages
):
    response = admin_client.get(LIST_URL, {"q": "Иван"})
    assert listed_ids(response) == [2011, 2010]
    assert "5+ пользователей Telegram" in paginator_text(response)
    assert "5+ результатов (" in response.content.decode()  # Django's words, our count
    assert "Выбрать всех пользователей Telegram (5+)" in response.content.decode()
    assert "Выбраны все 5+" in response.context["selection_note_all"]

    third = admin_client.get(LIST_URL, {"q": "Иван", "p": "3"})
    assert listed_ids(third) == [2007, 2006]
    # The cap follows the page asked for: far enough to count all twelve here.
    assert "12 пользователей Telegram" in paginator_text(third)
    assert listed_ids(admin_client.get(LIST_URL, {"q": "Иван", "p": "6"})) == [2001, 2000]


def test_the_list_never_counts_the_whole_table(admin_client, twelve, small_pages):
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(LIST_URL)
    assert listed_ids(response) == [2011, 2010]
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert all("LIMIT 6" in sql for sql in counts), counts  # capped, never the table
    label = {"capped": "5+", "estimate": "≈ "}[response.context["cl"].paginator.count_kind]
    assert f"{label}" in paginator_text(response)


def analyze_users() -> None:
    """Fresh planner statistics of the users table (an implicit commit on MySQL)."""
    table = "TABLE users_telegramuser" if connection.vendor == "mysql" else "users_telegramuser"
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
        if connection.vendor == "mysql":
            cursor.fetchall()


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="the planner's estimate is PostgreSQL's and MySQL's (SQLite counts up to the cap)",
)
@pytest.mark.django_db(transaction=True)  # MySQL's ANALYZE commits, and reads committed rows
def test_the_unfiltered_list_of_a_big_table_shows_the_estimate(admin_client, twelve, small_pages):
    analyze_users()
    response = admin_client.get(LIST_URL)
    assert "≈ 12 пользователей Telegram" in paginator_text(response)
    assert listed_ids(admin_client.get(LIST_URL, {"p": "6"})) == [2001, 2000]
    assert response.context["cl"].paginator.count_kind == "estimate"
    TelegramUser.objects.all().delete()
    analyze_users()  # statistics outlive the test
