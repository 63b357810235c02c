"""The dashboard in a real browser (Debian's Chromium through Playwright, as in
tests/test_admin_browser.py, whose fixtures these are): on a 1366×768 screen its charts
are drawn, nothing scrolls sideways, the tiles and the charts are on the first screen,
and the app list is still under them. A screenshot goes to test-output/admin-dashboard.png.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from backend.payments.services import balance_adjust
from backend.payments.vocabulary import BillStatus
from tests import test_admin_browser as admin_browser
from tests.test_admin_browser import LAPTOP, OUTPUT, BrowserThread
from tests.test_dashboard import bill, credit, local_midnight, person

pytestmark = pytest.mark.browser

SCREENSHOT = OUTPUT / "admin-dashboard.png"
# That module's fixtures: Chromium, a logged-in page on the live server, its superuser.
chromium, browser, admin = admin_browser.chromium, admin_browser.browser, admin_browser.admin


@pytest.fixture
def month_of_payments(transactional_db, settings) -> None:
    """Thirty days of top-ups by every provider, bills of each outcome, users."""
    settings.DASHBOARD_CACHE_SECONDS = 0
    payer = person()
    today = local_midnight()
    for days_ago in range(30):
        noon = today - timedelta(days=days_ago) + timedelta(hours=12)
        for k, provider in enumerate(("qiwi", "telegram", "yookassa")):
            for n in range((days_ago * (k + 2)) % 5):
                credit(payer, f"{150 * (k + 1) + 37 * n}.50", provider, noon + timedelta(minutes=n))
        for status in (BillStatus.EXPIRED, BillStatus.REJECTED)[: days_ago % 3]:
            bill(payer, "99.00", "qiwi", status, noon)
        person(created_at=noon, last_seen_at=noon + timedelta(days=days_ago % 4))
    bill(payer, "99.00", "yookassa", BillStatus.FAILED, today)
    balance_adjust(user=payer, amount=Decimal("12345678.90"), reason="начальный баланс")


def dashboard(page: Page) -> dict:
    page.set_viewport_size(LAPTOP)
    page.goto("/admin/")
    charts = page.locator("#summary svg.chart")
    expect(charts).to_have_count(3)
    for i in range(3):
        expect(charts.nth(i)).to_be_visible()
    expect(page.locator("#content-main .app-payments")).to_be_visible()
    page.mouse.move(0, 0)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    return page.evaluate(
        """() => {
            const box = (el) => el.getBoundingClientRect();
            const summary = document.querySelector('#summary');
            return {
                viewport: [window.innerWidth, window.innerHeight],
                page: document.documentElement.scrollWidth,
                summaryRight: Math.ceil(box(summary).right),
                chartsBottom: Math.max(...[...summary.querySelectorAll('svg.chart')].map(
                    (svg) => Math.ceil(box(svg).bottom))),
                charts: [...summary.querySelectorAll('svg.chart')].map((svg) => [
                    Math.round(box(svg).width), Math.round(box(svg).height),
                    svg.querySelectorAll('rect.bar').length]),
                // every element of the dashboard that is wider than its box
                overflowing: [...summary.querySelectorAll('*')].filter(
                    (el) => el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0
                ).map((el) => el.className.baseVal ?? el.className),
                tiles: [...summary.querySelectorAll('.summary-tile')].map((t) => t.innerText),
                appList: Math.round(box(document.querySelector('#content-main')).top),
                appListRight: Math.round(box(document.querySelector('#content-main')).right),
                recent: Math.round(box(document.querySelector('#content-related')).left),
            };
        }"""
    )


def test_the_dashboard_fits_a_1366_screen(browser: BrowserThread, month_of_payments) -> None:
    layout = browser.run(dashboard)
    width, height = layout["viewport"]
    assert (width, height) == (1366, 768)
    assert layout["page"] <= width, layout  # nothing scrolls sideways
    assert layout["summaryRight"] <= width
    assert layout["overflowing"] == [], layout["overflowing"]
    assert layout["chartsBottom"] <= height, layout  # the charts on the first screen
    assert all(w >= 300 and h >= 100 and bars > 0 for w, h, bars in layout["charts"])
    assert layout["appList"] > layout["chartsBottom"]  # the app list under the dashboard
    assert layout["recent"] > layout["appListRight"]  # the recent actions beside it
    assert any("12\u00a0345\u00a0678,90\u00a0₽" in tile for tile in layout["tiles"])
    assert SCREENSHOT.stat().st_size > 10_000
