"""The users admin in a real browser: Debian's Chromium driven by Playwright.

The admin runs in pytest-django's `live_server`; the test logs in through the login
form and clicks what an operator clicks. The data is written with the ORM and the
services, and what the clicks did is read back from the database.

Chromium must be at /usr/bin/chromium (`apt-get install chromium`; .ci/run installs
it): Playwright cannot download its own browsers here. A missing browser fails the
test, it never skips it.

Every step runs under the site's Content-Security-Policy, and fails on any violation
Chromium reports (its console, and a `securitypolicyviolation` listener) or on a page
of the admin that came without the header; and on any request the browser made that
failed (a 404 for /favicon.ico, say).

The lists are looked at on a 1366×768 screen, the most common laptop's: every column
fits, nothing scrolls sideways. Screenshots of them go to the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from openpyxl import load_workbook
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect, sync_playwright

from backend.broadcasts.models import Broadcast
from backend.broadcasts.services import broadcast_create, broadcast_queue
from backend.payments.models import Bill, LedgerEntry
from backend.payments.services import balance_adjust, bill_create, bill_mark_created
from backend.payments.vocabulary import ProviderName
from backend.users.models import TelegramUser
from tests.test_exports import TITLES as EXPORT_TITLES

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a container's /dev/shm is small
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
SCREENSHOT = OUTPUT / "admin-users-list.png"
FAILURE_SCREENSHOT = OUTPUT / "admin-failure.png"

USERS_URL = "/admin/users/telegramuser/"
BILLS_URL = "/admin/payments/bill/"
LEDGER_URL = "/admin/payments/ledgerentry/"
LAPTOP = {"width": 1366, "height": 768}
NBSP = "\u00a0"
ADMIN_NAME, ADMIN_PASSWORD = "admin", "pw-Admin-123"
YELLOW = "rgb(247, 198, 0)"  # #f7c600
TOOL_BUTTONS = ("Выгрузить CSV", "Выгрузить Excel", "Логи")
IVAN, MASHA, MALLORY = 700_000_001, 700_000_002, 700_000_003
CSP_WORDS = "Content Security Policy"
# Runs in every document before its own scripts: a violation the console might word
# differently is reported there too, with the words the console listener looks for.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`Content Security Policy violation: ${event.violatedDirective} `
                + `blocked ${event.blockedURI || "inline"} in ${event.documentURI}`);
});
"""

T = TypeVar("T")


class BrowserThread:
    """Playwright's sync API in a thread of its own.

    While it is started, the sync API marks its thread as running an asyncio loop, and
    Django's ORM refuses to work in such a thread (SynchronousOnlyOperation). So Chromium
    is driven from one worker thread (a Playwright object must be used by the thread that
    made it), and the test's thread keeps the database. `run(step, ...)` calls
    `step(page, ...)` there and returns what it returns, or raises what it raised; on a
    failure it saves a screenshot to test-output/admin-failure.png first.
    """

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
        self._playwright: Any = None
        self._browser: Browser | None = None
        self._page: Page | None = None
        self.csp_problems: list[str] = []  # violations, and admin pages without the header
        self.failed_requests: list[str] = []  # any answer of 400 or more the browser got

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        return self._worker.submit(function, *args).result()

    def start(self) -> None:
        def launch() -> None:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )

        self._call(launch)

    def stop(self) -> None:
        def close() -> None:
            if self._browser is not None:
                self._browser.close()
            if self._playwright is not None:
                self._playwright.stop()

        try:
            self._call(close)
        finally:
            self._worker.shutdown()

    def open_page(self, base_url: str) -> None:
        def open_() -> None:
            assert self._browser is not None
            context = self._browser.new_context(
                base_url=base_url, locale="ru-RU", viewport={"width": 1600, "height": 900}
            )
            context.add_init_script(CSP_LISTENER)
            self._page = context.new_page()
            self._page.on("console", self._on_console)
            self._page.on("response", self._on_response)
            self._page.set_default_timeout(10_000)

        self._call(open_)

    def close_page(self) -> None:
        def close() -> None:
            if self._page is not None:
                self._page.context.close()
                self._page = None

        self._call(close)

    def _on_console(self, message: ConsoleMessage) -> None:
        if CSP_WORDS in message.text:
            self.csp_problems.append(f"{message.page.url if message.page else ''}: {message.text}")

    def _on_response(self, response: Response) -> None:
        request = response.request
        if response.status >= 400:
            self.failed_requests.append(f"{response.status} {request.url}")
        if request.resource_type == "document" and "/admin/" in request.url:
            policy = response.headers.get("content-security-policy")
            if policy != expected_policy():
                self.csp_problems.append(f"{request.url}: Content-Security-Policy {policy!r}")

    def _check_csp(self, page: Page) -> None:
        """Lets the page's queued events reach us, then fails on what was reported."""
        with contextlib.suppress(Exception):  # a page that is navigating away
            page.evaluate("() => new Promise((done) => setTimeout(done, 50))")
        problems, self.csp_problems = self.csp_problems, []
        assert not problems, "\n".join(problems)
        failed, self.failed_requests = self.failed_requests, []
        assert not failed, "\n".join(failed)

    def run(self, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            assert self._page is not None
            try:
                result = step(self._page, *args, **kwargs)
                self._check_csp(self._page)
                return result
            except BaseException:
                with contextlib.suppress(Exception):  # the step's error is what matters
                    OUTPUT.mkdir(exist_ok=True)
                    self._page.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
                raise

        return self._call(call)


def expected_policy() -> str:
    return "; ".join(" ".join([name, *sources]) for name, sources in settings.SECURE_CSP.items())


@pytest.fixture(scope="module")
def chromium() -> Iterator[BrowserThread]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install chromium (the browser tests need it)",
            pytrace=False,
        )
    browser = BrowserThread()
    try:
        browser.start()
        yield browser
    finally:
        browser.stop()


@pytest.fixture
def admin(transactional_db) -> User:
    return User.objects.create_superuser(ADMIN_NAME, "admin@example.com", ADMIN_PASSWORD)


@pytest.fixture
def people(transactional_db) -> dict[str, TelegramUser]:
    ivan = TelegramUser.objects.create(
        telegram_id=IVAN, username="ivan_petrov", first_name="Иван", last_name="Петров"
    )
    balance_adjust(user=ivan, amount=Decimal("250.00"), reason="начальный баланс")
    masha = TelegramUser.objects.create(
        telegram_id=MASHA, username="masha", first_name="Мария", last_name="Смирнова"
    )
    # A name a spreadsheet would run as a formula.
    mallory = TelegramUser.objects.create(
        telegram_id=MALLORY, first_name='=HYPERLINK("http://evil.example")', last_name="-1"
    )
    return {"ivan": ivan, "masha": masha, "mallory": mallory}


@pytest.fixture
def browser(chromium, live_server, admin) -> Iterator[BrowserThread]:
    """A fresh browser context on the live server, logged in through the login form."""
    chromium.open_page(live_server.url)
    try:
        chromium.run(log_in, ADMIN_NAME, ADMIN_PASSWORD)
        yield chromium
    finally:
        chromium.close_page()


# --- steps: run in the browser's thread, never touch the database ----------------------


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/admin/login/")
    page.get_by_label("Имя пользователя").fill(username)
    page.get_by_label("Пароль").fill(password)
    page.get_by_role("button", name="Войти").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text(username)


def tool_buttons(page: Page) -> None:
    """The yellow buttons over the users list, and a screenshot of it."""
    page.goto(USERS_URL)
    expect(page.locator("#result_list")).to_be_visible()
    page.mouse.move(0, 0)  # no hover colour
    for name in TOOL_BUTTONS:
        button = page.locator(".object-tools").get_by_role("link", name=name, exact=True)
        expect(button).to_be_visible()
        expect(button).to_have_class("export-button")
        expect(button).to_have_css("background-color", YELLOW)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)


def result_rows(page: Page) -> list[str]:
    expect(page.locator("#changelist .paginator")).to_be_visible()  # also with no rows
    return page.locator("#result_list tbody tr").all_inner_texts()


def search(page: Page, term: str) -> list[str]:
    page.goto(USERS_URL)
    page.locator("#searchbar").fill(term)
    page.locator("#searchbar").press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q="))
    return result_rows(page)


def filter_by_balance(page: Page, choice: str) -> list[str]:
    page.goto(USERS_URL)
    page.locator("#changelist-filter").get_by_role("link", name=choice, exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]balance="))
    return result_rows(page)


def download(page: Page, button: str) -> tuple[str, bytes]:
    """Click a button over the list that downloads a file: its name and bytes."""
    with page.expect_download() as info:
        page.locator(".object-tools").get_by_role("link", name=button, exact=True).click()
    file = info.value
    return file.suggested_filename, Path(file.path()).read_bytes()


def logs_page(page: Page) -> str:
    """«Логи» over the list: the heading of the page it opens."""
    page.goto(USERS_URL)
    page.locator(".object-tools").get_by_role("link", name="Логи", exact=True).click()
    expect(page).to_have_url(re.compile(r"/telegramuser/logs/$"))
    return page.locator("#content h1").inner_text()


def block_with_action(page: Page, telegram_id: int) -> str:
    """Tick one user on the list and run the bulk block action: the message."""
    page.goto(USERS_URL)
    row = page.locator("#result_list tbody tr", has_text=str(telegram_id))
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label="Заблокировать выбранных пользователей")
    page.get_by_role("button", name="Выполнить").click()
    return page.locator("ul.messagelist").inner_text()


def adjust_balance(
    page: Page, pk: int, *, reason: str, amount: str = "", set_to: str = ""
) -> tuple[str, list[str]]:
    """«Изменить баланс» from the user's page: the message and the ledger inline's rows."""
    page.goto(f"{USERS_URL}{pk}/change/")
    page.locator(".object-tools").get_by_role("link", name="Изменить баланс").click()
    expect(page).to_have_url(re.compile(rf"/telegramuser/{pk}/adjust/$"))
    if amount:
        page.get_by_label("Изменить на").fill(amount)
    if set_to:
        page.get_by_label("Или установить баланс").fill(set_to)
    page.get_by_label("Причина").fill(reason)
    page.get_by_role("button", name="Сохранить").click()
    expect(page).to_have_url(re.compile(rf"/telegramuser/{pk}/change/$"))
    message = page.locator("ul.messagelist").inner_text()
    ledger = page.locator(".inline-group", has_text="журнал баланса (последние 50)")
    expect(ledger).to_be_visible()
    expect(ledger.locator("input:not([type=hidden]), textarea, select")).to_have_count(0)
    return message, ledger.locator("tbody tr").all_inner_texts()


def object_tools_styles(page: Page, pk: int, shot: Path) -> list[dict[str, Any]]:
    """The buttons over a user's page, as the browser draws them: the computed style
    and the box of «Изменить баланс», «Заблокировать» and «История»."""
    page.set_viewport_size(LAPTOP)
    page.goto(f"{USERS_URL}{pk}/change/")
    page.mouse.move(0, 0)  # no hover colour
    tools = page.locator(".object-tools")
    items = [
        tools.get_by_role("link", name="Изменить баланс"),
        tools.get_by_role("button", name="Заблокировать", exact=True),
        tools.get_by_role("link", name="История"),
    ]
    tools.screenshot(path=shot)
    return [
        item.evaluate(
            """(element) => {
                const style = getComputedStyle(element);
                const box = element.getBoundingClientRect();
                return {
                    text: element.innerText,
                    top: Math.round(box.top), height: Math.round(box.height),
                    background: style.backgroundColor, color: style.color,
                    font: `${style.fontSize} ${style.fontWeight} ${style.fontFamily}`,
                    transform: style.textTransform, spacing: style.letterSpacing,
                    radius: style.borderRadius, padding: style.padding, border: style.borderStyle,
                };
            }"""
        )
        for item in items
    ]


def page_layout(page: Page, url: str, shot: Path) -> dict[str, Any]:
    """A page on a 1366×768 screen: its widths, the list's headers, and a screenshot."""
    page.set_viewport_size(LAPTOP)
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    page.mouse.move(0, 0)
    page.screenshot(path=shot, full_page=True)
    return page.evaluate(
        """() => {
            const table = document.querySelector('#result_list');
            const results = document.querySelector('#changelist .results');
            const right = (element) => Math.ceil(element.getBoundingClientRect().right);
            return {
                viewport: window.innerWidth,
                page: document.documentElement.scrollWidth,
                table: table ? table.scrollWidth : 0,
                tableRight: table ? right(table) : 0,
                // the list's box, which scrolls sideways when the table is wider
                results: results ? [results.scrollWidth, results.clientWidth, right(results)] : [],
                headers: table ? [...table.querySelectorAll('thead th')].map(
                    (th) => [th.innerText.trim(), right(th)]) : [],
                inlines: [...document.querySelectorAll('.inline-group table')].map(
                    (t) => [t.scrollWidth, right(t)]),
                title: document.title,
                heading: document.querySelector('#content h1')?.innerText ?? '',
                paginator: document.querySelector('.paginator')?.innerText ?? '',
                actions: [...document.querySelectorAll('select[name=action] option')].map(
                    (o) => o.innerText),
                icon: document.querySelector('link[rel=icon]')?.href ?? '',
            };
        }"""
    )


def toggle_block(page: Page, pk: int, button: str) -> str:
    """The «Заблокировать»/«Разблокировать» button on the user's page: the button after."""
    page.goto(f"{USERS_URL}{pk}/change/")
    page.locator(".object-tools").get_by_role("button", name=button, exact=True).click()
    expect(page.locator("ul.messagelist")).to_be_visible()
    # in a row with «Изменить баланс» and «История»: users/admin.css, no inline style
    expect(page.locator(".object-tools form.block-toggle")).to_have_css("display", "inline")
    return page.locator(".object-tools form.block-toggle button").text_content().strip()


def visit(page: Page, url: str) -> str:
    """Open a page of the admin: its heading."""
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    expect(page.locator("#content")).to_be_visible()
    return page.locator("#content h1, #content h2").first.inner_text()


def open_calendar(page: Page, url: str) -> None:
    """The date widget's calendar: elements the admin's JavaScript makes."""
    visit(page, url)
    page.locator("#calendarlink0").click()
    expect(page.locator("#calendarbox0")).to_be_visible()
    page.locator("#calendarbox0").get_by_role("link", name="Сегодня").click()
    expect(page.locator("#calendarbox0")).to_be_hidden()


def log_out(page: Page) -> None:
    page.goto("/admin/")
    page.locator("#logout-form button").click()
    expect(page.locator("#content h1")).to_have_text("Не авторизован")  # Django's «Logged out»


def break_the_policy(page: Page) -> bool:
    """What the policy forbids, done on an admin page: an inline style and an inline
    script. Whether the script ran."""
    page.goto("/admin/")
    return page.evaluate(
        """() => {
            document.body.setAttribute("style", "outline: 1px solid red");
            const script = document.createElement("script");
            script.textContent = "window.inlineScriptRan = true";
            document.body.append(script);
            return window.inlineScriptRan === true;
        }"""
    )


# --- helpers of the test's thread -------------------------------------------------------


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "the CSV must start with a UTF-8 BOM (for Excel)"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


def xlsx_rows(data: bytes) -> list[tuple]:
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def reload(user: TelegramUser) -> TelegramUser:
    return TelegramUser.objects.get(pk=user.pk)


# --- tests ------------------------------------------------------------------------------


def test_users_list_search_and_exports(browser: BrowserThread, people) -> None:
    browser.run(tool_buttons)
    assert SCREENSHOT.stat().st_size > 10_000

    # Search by the start of a username, then export: the export is of the same users.
    rows = browser.run(search, "ivan_p")
    assert len(rows) == 1
    assert str(IVAN) in rows[0]
    assert "Иван" in rows[0]
    assert "Петров" in rows[0]
    assert "250,00" in rows[0]

    name, data = browser.run(download, "Выгрузить CSV")
    assert re.fullmatch(r"users-\d{4}-\d\d-\d\d-\d{4}\.csv", name)
    header, *lines = csv_rows(data)
    assert header == EXPORT_TITLES
    assert [line[:6] for line in lines] == [
        [str(IVAN), "ivan_petrov", "Иван", "Петров", "250,00", "Нет"]
    ]

    name, data = browser.run(download, "Выгрузить Excel")
    assert name.endswith(".xlsx")
    header, *lines = xlsx_rows(data)
    assert list(header) == EXPORT_TITLES
    assert [line[:6] for line in lines] == [(IVAN, "ivan_petrov", "Иван", "Петров", 250, "Нет")]

    # Digits are a whole Telegram id.
    rows = browser.run(search, str(MASHA))
    assert len(rows) == 1
    assert "masha" in rows[0]
    assert browser.run(search, str(MASHA)[:-1]) == []

    # The balance filter, and its export: formula-like names are neutralised.
    rows = browser.run(filter_by_balance, "ноль")
    assert len(rows) == 2
    assert not any(str(IVAN) in row for row in rows)
    _, data = browser.run(download, "Выгрузить CSV")
    header, *lines = csv_rows(data)
    assert [line[:6] for line in lines] == [
        [str(MASHA), "masha", "Мария", "Смирнова", "0,00", "Нет"],
        [str(MALLORY), "", '\'=HYPERLINK("http://evil.example")', "'-1", "0,00", "Нет"],
    ]

    assert browser.run(logs_page) == "Логи"


def test_block_and_adjust_balance(browser: BrowserThread, people, admin) -> None:
    ivan, masha = people["ivan"], people["masha"]

    message = browser.run(block_with_action, MASHA)
    assert re.search(r"(?i)заблокировано.*\b1\b", message), message
    assert reload(masha).is_blocked is True
    assert reload(ivan).is_blocked is False

    # A signed amount.
    message, ledger = browser.run(adjust_balance, ivan.pk, amount="150", reason="компенсация")
    # Sums the Russian way, one format in the messages and on the pages.
    assert f"Баланс изменён на +150,00{NBSP}₽, теперь 400,00{NBSP}₽." in message
    assert "компенсация" in ledger[0]  # newest first
    assert f"+150,00{NBSP}₽" in ledger[0]
    assert f"400,00{NBSP}₽" in ledger[0]
    assert ADMIN_NAME in ledger[0]
    assert reload(ivan).balance == Decimal("400.00")
    entry = LedgerEntry.objects.filter(user=ivan).latest("pk")
    assert entry.kind == LedgerEntry.Kind.ADJUSTMENT
    assert entry.amount == Decimal("150.00")
    assert entry.balance_after == Decimal("400.00")
    assert entry.reason == "компенсация"
    assert entry.admin == admin

    # A decimal comma, as Russian speakers type it.
    message, _ = browser.run(adjust_balance, ivan.pk, amount="-50,5", reason="округление")
    assert f"Баланс изменён на -50,50{NBSP}₽, теперь 349,50{NBSP}₽." in message
    assert reload(ivan).balance == Decimal("349.50")

    # The balance to set.
    message, ledger = browser.run(adjust_balance, ivan.pk, set_to="1000", reason="сверка")
    assert f"Баланс изменён на +650,50{NBSP}₽, теперь 1{NBSP}000,00{NBSP}₽." in message
    assert "сверка" in ledger[0]
    assert reload(ivan).balance == Decimal("1000.00")
    entry = LedgerEntry.objects.filter(user=ivan).latest("pk")
    assert (entry.amount, entry.balance_after, entry.admin) == (
        Decimal("650.50"),
        Decimal("1000.00"),
        admin,
    )

    # The block button on the user's page, and back.
    assert browser.run(toggle_block, ivan.pk, "Заблокировать") == "Разблокировать"
    assert reload(ivan).is_blocked is True
    assert browser.run(toggle_block, ivan.pk, "Разблокировать") == "Заблокировать"
    assert reload(ivan).is_blocked is False


def test_every_admin_page_keeps_to_the_content_security_policy(
    browser: BrowserThread, people, admin
) -> None:
    """Django's own admin pages and ours, under the policy: the header on each, no
    violation reported (a violation or a missing header fails `browser.run`)."""
    ivan = people["ivan"]
    bill = bill_create(user=ivan, amount=Decimal(100), lifetime=timedelta(minutes=5))
    entry = LedgerEntry.objects.filter(user=ivan).latest("pk")
    assert Bill.objects.filter(pk=bill.pk).exists()
    broadcast = broadcast_create(text="<b>Новости</b> <tg-spoiler>тайна</tg-spoiler>")
    broadcast_queue(broadcast_id=broadcast.pk)  # running: the page reloads itself
    pages = [
        "/admin/",
        "/admin/users/",
        "/admin/payments/",
        "/admin/auth/",
        USERS_URL,
        f"{USERS_URL}?balance=positive&q=ivan",
        f"{USERS_URL}{ivan.pk}/change/",
        f"{USERS_URL}{ivan.pk}/adjust/",
        f"{USERS_URL}{ivan.pk}/history/",
        f"{USERS_URL}logs/",
        "/admin/payments/bill/",
        f"/admin/payments/bill/{bill.pk}/change/",
        "/admin/payments/bill/reconciliation/",
        "/admin/broadcasts/broadcast/",
        "/admin/broadcasts/broadcast/add/",
        f"/admin/broadcasts/broadcast/{broadcast.pk}/change/",
        "/admin/broadcasts/delivery/",
        "/admin/payments/ledgerentry/",
        f"/admin/payments/ledgerentry/{entry.pk}/change/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        f"/admin/auth/user/{admin.pk}/change/",  # the groups and permissions selectors
        "/admin/auth/group/add/",
        "/admin/password_change/",
    ]
    for url in pages:
        assert browser.run(visit, url), url
    browser.run(open_calendar, f"/admin/auth/user/{admin.pk}/change/")
    browser.run(log_out)


def test_a_violation_of_the_policy_fails_the_test(browser: BrowserThread) -> None:
    """The check above is not blind: an inline style and an inline script on an admin
    page are blocked by Chromium, reported, and fail the step."""
    with pytest.raises(AssertionError, match="Content Security Policy") as failed:
        browser.run(break_the_policy)
    report = str(failed.value)
    assert "style-src" in report
    assert "script-src" in report
    assert browser.run(visit, "/admin/") == "Пополнение баланса: администрирование"  # clean


# --- a 1366×768 screen ------------------------------------------------------------------


@pytest.fixture
def busy(transactional_db, people) -> dict[str, Any]:
    """Rows as wide as real ones get: the longest username Telegram allows, long names,
    a balance in millions, bills of both providers with every column filled."""
    wide = TelegramUser.objects.create(
        telegram_id=-1_001_234_567_890,
        username="a_very_long_username_of_32_chars",
        first_name="Александра-Анастасия",
        last_name="Константинопольская-Щукина",
    )
    balance_adjust(user=wide, amount=Decimal("1234567.89"), reason="сверка с выпиской " * 5)
    bills = []
    for _ in range(3):
        bill = bill_create(user=wide, amount=Decimal("100000.00"), lifetime=timedelta(minutes=5))
        bill_mark_created(
            bill_id=bill.pk, pay_url="https://pay.example/x", provider_status="WAITING"
        )
        bills.append(bill)
    stars = bill_create(
        user=people["ivan"],
        amount=Decimal("1500.00"),
        lifetime=timedelta(minutes=5),
        provider=ProviderName.TELEGRAM,
    )
    Bill.objects.filter(pk=stars.pk).update(
        status=Bill.Status.PAID,
        invoice_currency="XTR",
        invoice_total=1500,
        charge_id="stxAbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        provider_status="successful_payment",
    )
    return {"wide": wide, "bills": bills, "stars": stars}


def fits(layout: dict[str, Any]) -> None:
    """Nothing wider than the screen: the page, the list (no sideways scrolling in its box,
    which ends before the filters), each of its columns, each inline."""
    width = layout["viewport"]
    assert width == LAPTOP["width"]
    assert layout["page"] <= width, layout
    assert layout["table"] <= width and layout["tableRight"] <= width, layout
    if layout["results"]:
        scroll_width, client_width, box_right = layout["results"]
        assert scroll_width <= client_width, layout
        assert layout["tableRight"] <= box_right, layout
        assert all(right <= box_right for _, right in layout["headers"]), layout["headers"]
    assert all(w <= width and right <= width for w, right in layout["inlines"]), layout


def test_the_lists_fit_a_1366_screen(browser: BrowserThread, busy, tmp_path) -> None:
    wide = busy["wide"]
    users = browser.run(page_layout, USERS_URL, tmp_path / "users-1366.png")
    fits(users)
    assert [name for name, _ in users["headers"]][1:] == [
        "TELEGRAM ID",
        "USERNAME",
        "ИМЯ",
        "БАЛАНС",
        "ЗАБЛОКИРОВАН",
        "ПОСЛЕДНЯЯ АКТИВНОСТЬ",
        "СОЗДАН",
    ]
    assert users["heading"] == "Пользователи Telegram"
    assert users["paginator"].strip() == "4 пользователя Telegram"
    assert users["title"] == "Пользователи Telegram | Пополнение баланса"

    bills = browser.run(page_layout, BILLS_URL, tmp_path / "bills-1366.png")
    fits(bills)
    assert "СТАТУС" in [name for name, _ in bills["headers"]]
    assert bills["heading"] == "Счета"
    assert bills["paginator"].strip() == "4 счёта"

    ledger = browser.run(page_layout, LEDGER_URL, tmp_path / "ledger-1366.png")
    fits(ledger)
    assert ledger["heading"] == "Записи журнала баланса"
    assert ledger["paginator"].strip() == "2 записи журнала баланса"

    recon = browser.run(page_layout, f"{BILLS_URL}reconciliation/", tmp_path / "recon-1366.png")
    fits(recon)
    assert recon["heading"] == "Сверка платежей"

    page = browser.run(page_layout, f"{USERS_URL}{wide.pk}/change/", tmp_path / "user-1366.png")
    fits(page)
    assert page["heading"] == "Изменить пользователя Telegram"
    stars = busy["stars"]
    bill_page = browser.run(page_layout, f"{BILLS_URL}{stars.pk}/change/", tmp_path / "bill.png")
    assert bill_page["heading"] == "Просмотреть счёт"
    assert bill_page["icon"].endswith("/static/site/favicon.svg")
    for shot in tmp_path.glob("*.png"):
        assert shot.stat().st_size > 10_000, shot


def test_the_block_button_looks_like_its_neighbours(
    browser: BrowserThread, people, tmp_path
) -> None:
    change, block, history = browser.run(
        object_tools_styles, people["ivan"].pk, tmp_path / "object-tools.png"
    )
    assert block["text"].strip() == "ЗАБЛОКИРОВАТЬ"  # upper case, as the links are drawn
    for neighbour in (change, history):
        for key in ("top", "height", "background", "color", "font", "transform", "spacing"):
            assert block[key] == neighbour[key], (key, block, neighbour)
        assert block["radius"] == neighbour["radius"] and block["padding"] == neighbour["padding"]


# --- «Рассылки» ---------------------------------------------------------------------------


def write_broadcast(page: Page, text: str, shot: Path) -> dict[str, Any]:
    """«Добавить рассылку»: a refused text first, then a good one; its page, started."""
    page.set_viewport_size(LAPTOP)
    page.goto("/admin/broadcasts/broadcast/add/")
    page.locator("#id_text").fill("<div>нельзя</div>")
    page.get_by_role("button", name="Сохранить", exact=True).click()
    refused = page.locator("ul.errorlist").first.inner_text()
    page.locator("#id_text").fill(text)
    page.locator("#id_button_text").fill("Подробнее")
    page.locator("#id_button_url").fill("https://shop.example/promo")
    page.get_by_role("button", name="Сохранить и продолжить редактирование").click()
    expect(page).to_have_url(re.compile(r"/broadcast/\d+/change/$"))
    preview = page.locator(".tg-preview")
    expect(preview).to_be_visible()
    bold = preview.locator("b").inner_text()
    page.get_by_role("button", name="Начать рассылку").click()
    expect(page.locator("ul.messagelist")).to_contain_text("в очереди")
    expect(page.get_by_role("button", name="Приостановить")).to_be_visible()
    page.screenshot(path=shot, full_page=True)
    return {
        "refused": refused,
        "bold": bold,
        "width": page.evaluate("document.documentElement.scrollWidth"),
    }


def test_a_broadcast_is_written_and_started_in_the_browser(
    browser: BrowserThread, people, tmp_path
) -> None:
    shot = tmp_path / "broadcast-1366.png"
    seen = browser.run(write_broadcast, "<b>Акция</b> до пятницы &lt;3", shot)
    assert "Telegram не примет текст" in seen["refused"]
    assert seen["bold"] == "Акция"
    assert seen["width"] <= LAPTOP["width"]
    assert shot.stat().st_size > 10_000
    broadcast = Broadcast.objects.get()
    assert broadcast.status == "queued" and broadcast.button_url == "https://shop.example/promo"
