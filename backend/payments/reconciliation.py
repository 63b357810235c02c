"""The owner's reconciliation («Сверка платежей»): for a period, every payment the
providers report as paid beside our bills and ledger, the rows that differ first.

Not `backend.payments.reconcile`: that is the bot's own loop, which credits lost Stars
payments by itself every few minutes. This module only compares and reports (the
admin's page and `manage.py reconcile`), and credits a missing payment only when an
admin asks (`payment_credit`), through the same services as the bill jobs, once.

What is read: YooKassa lists the shop's payments created in the period (only the
`succeeded` ones: what was paid); each of our credited YooKassa bills it did not list
is asked about by its payment id, so that a payment made just past the period's end is
not taken for missing, and the row says what YooKassa says of it. Telegram Stars:
getStarTransactions. QIWI lists nothing: our paid bills are checked against the ledger
only, as are Telegram payments through a provider token (no Bot API call lists them).
Every credited bill must have exactly one top-up row in the ledger, of its amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from loguru import logger

from backend.common.db import db_async
from backend.common.money import money_format
from backend.payments import selectors, services
from backend.payments.models import Bill
from backend.payments.providers.base import PaymentProvider, ProviderError, ProviderNotFound
from backend.payments.services import BillTransition
from backend.payments.vocabulary import PROVIDER_TITLES, STARS_CURRENCY, BillStatus, ProviderName

if TYPE_CHECKING:  # aiogram takes seconds to import: only when a provider is read
    from backend.payments.providers.telegram import TelegramPaymentsProvider
    from backend.payments.providers.yookassa import YooKassaProvider

DEFAULT_DAYS = 7  # the admin's page opens on the last week, today included
CLOCK_MARGIN = timedelta(minutes=10)  # Telegram's clock may be behind ours
REFETCH_MAX = 200  # credited bills YooKassa did not list, asked about one by one
CREDITABLE = Bill.OPEN_STATUSES + Bill.LATE_PAYABLE  # what «Зачислить» may credit


class Verdict(StrEnum):
    NOT_CREDITED = "not_credited"  # paid at the provider, our bill not credited
    NOT_PAID = "not_paid"  # credited here, not paid at the provider
    AMOUNTS_DIFFER = "amounts_differ"  # paid, but not what the bill asks
    LEDGER_DIFFERS = "ledger_differs"  # a credited bill without exactly one top-up of it
    FOREIGN = "foreign"  # a payment the bot did not make (no bill id): shown, not counted
    OK = "ok"


VERDICTS = {
    Verdict.NOT_CREDITED: gettext_lazy("paid at the provider, not credited"),
    Verdict.NOT_PAID: gettext_lazy("credited, not paid"),
    Verdict.AMOUNTS_DIFFER: gettext_lazy("amounts differ"),
    Verdict.LEDGER_DIFFERS: gettext_lazy("the ledger differs"),
    Verdict.FOREIGN: gettext_lazy("not the bot's payment"),
    Verdict.OK: gettext_lazy("agrees"),
}
ORDER = list(Verdict)


@dataclass(frozen=True)
class Paid:
    """A payment a provider reports as paid: `amount` in `currency`'s own units (whole
    stars for XTR); `bill_id` is empty when it names no bill at all."""

    charge_id: str
    bill_id: str
    amount: Decimal
    currency: str
    moment: datetime
    provider_status: str = ""


@dataclass(frozen=True)
class Row:
    provider: ProviderName
    verdict: Verdict
    moment: datetime | None  # the payment's time, or the bill's creation
    charge_id: str = ""
    bill: Bill | None = None
    paid: Paid | None = None
    provider_status: str = ""  # what the provider says, when it is not «paid»
    topups: tuple[Decimal, ...] = ()  # the bill's top-up rows in the ledger
    notes: tuple[str, ...] = ()
    creditable: bool = False  # «Зачислить» may credit it

    @property
    def differs(self) -> bool:
        return self.verdict not in (Verdict.OK, Verdict.FOREIGN)

    @property
    def verdict_text(self) -> str:
        return str(VERDICTS[self.verdict])

    @property
    def provider_text(self) -> str:
        return PROVIDER_TITLES.get(self.provider, str(self.provider))

    @property
    def paid_text(self) -> str:
        """What the provider took: «1 000,00 ₽», «75 ⭐»; empty if it took nothing."""
        if self.paid is None:
            return ""
        return amount_text(self.paid.amount, self.paid.currency)

    @property
    def bill_text(self) -> str:
        """What the bill asked: its amount, and the stars of a Stars invoice."""
        if self.bill is None:
            return ""
        text = money_format(self.bill.amount, currency=self.bill.currency)
        if self.bill.invoice_currency == STARS_CURRENCY and self.bill.invoice_total is not None:
            text += f" ({amount_text(Decimal(self.bill.invoice_total), STARS_CURRENCY)})"
        return text

    @property
    def credited_text(self) -> str:
        return money_format(sum(self.topups, Decimal(0))) if self.topups else ""

    @property
    def note_text(self) -> str:
        return "; ".join(self.notes)


def amount_text(amount: Decimal, currency: str) -> str:
    return (
        f"{amount:f} ⭐" if currency == STARS_CURRENCY else money_format(amount, currency=currency)
    )


@dataclass(frozen=True)
class Statement:
    since: datetime
    until: datetime
    rows: tuple[Row, ...] = ()
    errors: tuple[str, ...] = ()  # a provider that could not be read, and why
    notes: tuple[str, ...] = ()  # how a provider was checked, when not by its list

    @property
    def differing(self) -> list[Row]:
        return [row for row in self.rows if row.differs]


def period(first: date, last: date) -> tuple[datetime, datetime]:
    """Days `first` to `last`, both included, in the site's time zone: [since, until)."""
    zone = timezone.get_current_timezone()
    since = datetime.combine(first, time.min, tzinfo=zone)
    return since, datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)


def default_days() -> tuple[date, date]:
    today = timezone.localdate()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


# --- the comparison -----------------------------------------------------------------------


def _asks(bill: Bill) -> tuple[Decimal, str]:
    """What the bill asks the payer: its stars for a Stars invoice, else its amount."""
    if bill.invoice_currency == STARS_CURRENCY and bill.invoice_total is not None:
        return Decimal(bill.invoice_total), STARS_CURRENCY
    return bill.amount, bill.currency


def _credited(bill: Bill) -> bool:
    return bill.status in selectors.CREDITED_STATUSES


def _ledger_notes(bill: Bill, topups: list[Decimal]) -> tuple[str, ...]:
    """Empty when the ledger agrees with the bill: one top-up of its amount if it was
    credited, none if not."""
    expected = [bill.amount] if _credited(bill) else []
    if topups == expected:
        return ()
    if not topups:
        return (_("no top-up for it in the ledger"),)
    return (
        _("top-ups in the ledger: %(count)s, %(total)s in all")
        % {"count": len(topups), "total": money_format(sum(topups, Decimal(0)))},
    )


def _paid_row(provider: ProviderName, paid: Paid, bill: Bill | None, topups: list[Decimal]) -> Row:
    row = Row(
        provider=provider,
        verdict=Verdict.OK,
        moment=paid.moment,
        charge_id=paid.charge_id,
        bill=bill,
        paid=paid,
        topups=tuple(topups),
    )
    if not paid.bill_id:
        return _with(row, Verdict.FOREIGN, _("the payment names no bill: not made by the bot"))
    if bill is None:
        return _with(
            row, Verdict.NOT_CREDITED, _("we have no bill %(bill)s") % {"bill": paid.bill_id}
        )
    ledger = _ledger_notes(bill, topups)
    if bill.charge_id and bill.charge_id != paid.charge_id:
        note = _("the bill is paid by another payment, %(charge)s") % {"charge": bill.charge_id}
        return _with(row, Verdict.NOT_CREDITED, note, *ledger)
    if _asks(bill) != (paid.amount, paid.currency):
        amount, currency = _asks(bill)
        note = _("the bill asks %(asked)s") % {"asked": amount_text(amount, currency)}
        return _with(row, Verdict.AMOUNTS_DIFFER, note, *ledger)
    if not _credited(bill):
        status = _("our bill: %(status)s") % {"status": bill.get_status_display()}
        row = _with(row, Verdict.NOT_CREDITED, status, *ledger)
        return Row(**{**row.__dict__, "creditable": bill.status in CREDITABLE})
    if ledger:
        return _with(row, Verdict.LEDGER_DIFFERS, *ledger)
    return row


def _with(row: Row, verdict: Verdict, *notes: str) -> Row:
    return Row(**{**row.__dict__, "verdict": verdict, "notes": row.notes + notes})


def compare(
    *,
    provider: ProviderName,
    paid: Iterable[Paid] | None,
    credited: Iterable[Bill],
    bills: Mapping[str, Bill],
    topups: Mapping[str, list[Decimal]],
    words: Mapping[str, str] | None = None,
) -> list[Row]:
    """The rows of one provider. `paid`: what it reports as paid (None: it lists
    nothing, and `credited` is checked against the ledger only); `credited`: our bills of
    the period credited by their status or the ledger; `bills`: our bills by id (those
    `paid` names among them); `words`: what the provider says of a credited bill it does
    not report as paid, by bill id."""
    words = words or {}
    rows, named = [], set()
    for payment in paid or ():
        bill = bills.get(payment.bill_id)
        named.add(payment.bill_id)
        rows.append(_paid_row(provider, payment, bill, topups.get(payment.bill_id, [])))
    for bill in credited:
        if bill.pk in named:
            continue
        own = topups.get(bill.pk, [])
        row = Row(
            provider=provider,
            verdict=Verdict.OK,
            moment=bill.created_at,
            charge_id=bill.charge_id,
            bill=bill,
            topups=tuple(own),
        )
        ledger = _ledger_notes(bill, own)
        if paid is not None:
            word = words.get(bill.pk, "")
            said = _("the provider does not list it as paid")
            if word:
                said = _("the provider says: %(word)s") % {"word": word}
            row = Row(**{**row.__dict__, "provider_status": word})
            rows.append(_with(row, Verdict.NOT_PAID, said, *ledger))
        else:
            rows.append(_with(row, Verdict.LEDGER_DIFFERS, *ledger) if ledger else row)
    return rows


def ordered(rows: Iterable[Row]) -> tuple[Row, ...]:
    """The rows that differ first, then the foreign payments, then those that agree;
    the newest first within each."""
    rows = sorted(rows, key=lambda r: r.moment.timestamp() if r.moment else 0, reverse=True)
    return tuple(sorted(rows, key=lambda r: ORDER.index(r.verdict)))


# --- reading the providers ----------------------------------------------------------------


@db_async
def _ours(
    provider: ProviderName, since: datetime, until: datetime, bill_ids: Iterable[str]
) -> tuple[list[Bill], dict[str, Bill], dict[str, list[Decimal]]]:
    credited = selectors.bills_credited_between(provider=provider, since=since, until=until)
    bills = selectors.bills_by_ids(provider=provider, bill_ids=[*bill_ids])
    bills.update((bill.pk, bill) for bill in credited)
    return credited, bills, selectors.ledger_topups(bill_ids=bills)


async def _yookassa_rows(
    provider: YooKassaProvider, since: datetime, until: datetime
) -> tuple[list[Row], list[str]]:
    read = await provider.list_payments(since=since, until=until, status="succeeded")
    errors = []
    if not read.complete:
        errors.append(
            _("ЮKassa: read %(pages)s pages of its list and stopped; the rest was not looked at")
            % {"pages": read.pages}
        )
    paid = [
        Paid(p.payment_id, p.bill_id, p.amount, p.currency, p.created_at, p.provider_status)
        for p in read.payments
        if p.status == BillStatus.PAID
    ]
    credited, bills, topups = await _ours(
        ProviderName.YOOKASSA, since, until, [p.bill_id for p in paid]
    )
    listed = {p.bill_id for p in paid}
    words: dict[str, str] = {}
    missing = [bill for bill in credited if bill.pk not in listed]
    for bill in missing[:REFETCH_MAX]:
        try:
            remote = await provider.get_bill(bill_id=bill.pk, charge_id=bill.charge_id)
        except ProviderNotFound:
            words[bill.pk] = _("no such payment")
            continue
        if remote.status == BillStatus.PAID:  # made past the period's end: it agrees
            paid.append(
                Paid(
                    remote.charge_id,
                    bill.pk,
                    remote.amount,
                    remote.currency,
                    bill.created_at,
                    remote.provider_status,
                )
            )
        else:
            words[bill.pk] = remote.provider_status
    if len(missing) > REFETCH_MAX:
        errors.append(
            _("ЮKassa: %(count)s credited bills it did not list; the first %(max)s were asked")
            % {"count": len(missing), "max": REFETCH_MAX}
        )
    rows = compare(
        provider=ProviderName.YOOKASSA,
        paid=paid,
        credited=credited,
        bills=bills,
        topups=topups,
        words=words,
    )
    return rows, errors


async def _stars_rows(
    provider: TelegramPaymentsProvider, since: datetime, until: datetime
) -> tuple[list[Row], list[str]]:
    read = await provider.star_payments(since=since - CLOCK_MARGIN)
    errors = []
    if not read.complete:
        errors.append(
            _(
                "Telegram: read %(pages)s pages of Star transactions and stopped; the rest "
                "was not looked at"
            )
            % {"pages": read.pages}
        )
    payments = [
        Paid(p.charge_id, p.payload, Decimal(p.stars), STARS_CURRENCY, p.date, "")
        for p in read.payments
    ]
    credited, bills, topups = await _ours(
        ProviderName.TELEGRAM, since, until, [p.bill_id for p in payments]
    )
    ours = {bill.pk for bill in credited}
    # Payments of the period, and those of its bills made after it.
    paid = [p for p in payments if since <= p.moment < until or p.bill_id in ours]
    stars = [bill for bill in credited if bill.invoice_currency == STARS_CURRENCY]
    others = [bill for bill in credited if bill.invoice_currency != STARS_CURRENCY]
    rows = compare(
        provider=ProviderName.TELEGRAM, paid=paid, credited=stars, bills=bills, topups=topups
    )
    rows += compare(
        provider=ProviderName.TELEGRAM, paid=None, credited=others, bills=bills, topups=topups
    )
    return rows, errors


async def _ledger_rows(provider: ProviderName, since: datetime, until: datetime) -> list[Row]:
    credited, bills, topups = await _ours(provider, since, until, [])
    return compare(provider=provider, paid=None, credited=credited, bills=bills, topups=topups)


def _listed(provider: PaymentProvider | None) -> bool:
    """Whether this provider's payments can be read back at all."""
    return getattr(provider, "takes_stars", True)


async def statement_read(
    *,
    since: datetime,
    until: datetime,
    names: Iterable[ProviderName],
    providers: Mapping[ProviderName, PaymentProvider],
) -> Statement:
    """The statement of the period [since, until) for the providers `names`, read from
    `providers` (a provider missing there is an error line). A provider that fails is an
    error line too; the others are read all the same."""
    rows: list[Row] = []
    errors: list[str] = []
    notes: list[str] = []
    for name in sorted(set(names)):
        label = PROVIDER_TITLES[name]
        try:
            if name == ProviderName.QIWI:
                rows += await _ledger_rows(name, since, until)
                notes.append(
                    _("QIWI gives no list of payments; our bills are checked against the ledger")
                )
                continue
            provider = providers.get(name)
            if provider is None:
                errors.append(
                    _("%(provider)s: not connected (is TELEGRAM_API_TOKEN set?)")
                    % {"provider": label}
                )
                continue
            if name == ProviderName.YOOKASSA:
                found, failed = await _yookassa_rows(provider, since, until)  # type: ignore[arg-type]
            elif _listed(provider):
                found, failed = await _stars_rows(provider, since, until)  # type: ignore[arg-type]
            else:
                found, failed = await _ledger_rows(name, since, until), []
                notes.append(
                    _(
                        "Telegram lists no payments made through a provider token; our bills "
                        "are checked against the ledger"
                    )
                )
        except ProviderError as e:
            errors.append(
                _("%(provider)s could not be read: %(error)s") % {"provider": label, "error": e}
            )
            continue
        rows += found
        errors += failed
    return Statement(
        since=since, until=until, rows=ordered(rows), errors=tuple(errors), notes=tuple(notes)
    )


def _names(since: datetime, until: datetime) -> set[ProviderName]:
    """The providers on now, and those that have bills in the period (switched off
    since)."""
    billed = selectors.providers_billed_between(since=since, until=until)
    return {ProviderName(name) for name in [*settings.PAYMENT_PROVIDERS, *billed]}


async def statement_for_period(*, since: datetime, until: datetime) -> Statement:
    """`statement_read` through the bot's connections, as the admin's «check now»
    reaches the providers; each is connected on its own, so one that cannot be made
    (a setting missing) is an error line and the others are read."""
    from backend.bot import client  # aiogram: only when a statement is asked for

    names = await db_async(_names)(since, until)
    statements = []
    errors = []
    for name in sorted(names - {ProviderName.QIWI}):
        try:
            async with client.connect(providers=[name]) as connection:
                statement = await statement_read(
                    since=since, until=until, names=[name], providers=connection.providers
                )
            statements.append(statement)
        except (ProviderError, ValueError) as e:
            errors.append(
                _("%(provider)s could not be read: %(error)s")
                % {"provider": PROVIDER_TITLES[name], "error": e}
            )
    if ProviderName.QIWI in names:
        statements.append(
            await statement_read(since=since, until=until, names=[ProviderName.QIWI], providers={})
        )
    return Statement(
        since=since,
        until=until,
        rows=ordered(row for s in statements for row in s.rows),
        errors=tuple(errors) + tuple(e for s in statements for e in s.errors),
        notes=tuple(n for s in statements for n in s.notes),
    )


# --- crediting a missing payment -------------------------------------------------------------


class NotCredited(Exception):
    """Nothing was credited; the message is for a person."""


def credit_reason() -> str:
    return _("credited from the reconciliation of payments")


@db_async
def _bill(provider: ProviderName, bill_id: str) -> Bill | None:
    return selectors.bills_by_ids(provider=provider, bill_ids=[bill_id]).get(bill_id)


async def _credit_yookassa(
    provider: YooKassaProvider, bill_id: str, charge_id: str, admin: AbstractBaseUser
) -> BillTransition:
    bill = await _bill(ProviderName.YOOKASSA, bill_id)
    if bill is None or bill.charge_id != charge_id:
        raise NotCredited(_("payment %(charge)s is not the bill's own") % {"charge": charge_id})
    remote = await provider.get_bill(bill_id=bill_id, charge_id=charge_id)  # never the list
    if remote.status != BillStatus.PAID:
        raise NotCredited(
            _("ЮKassa says the payment is %(word)s") % {"word": remote.provider_status}
        )
    return await services.abill_apply_status(
        bill_id=bill_id,
        status=remote.status,
        provider_status=remote.provider_status,
        amount=remote.amount,
        currency=remote.currency,
        admin=admin,
        reason=credit_reason(),
    )


async def _credit_stars(
    provider: TelegramPaymentsProvider,
    bill_id: str,
    charge_id: str,
    since: datetime,
    admin: AbstractBaseUser,
) -> BillTransition:
    read = await provider.star_payments(since=since - CLOCK_MARGIN)
    found = [p for p in read.payments if p.charge_id == charge_id and p.payload == bill_id]
    if not found:
        raise NotCredited(_("Telegram does not list payment %(charge)s") % {"charge": charge_id})
    payment = found[0]
    return await services.abill_pay_reported(
        bill_id=payment.payload,
        telegram_id=payment.telegram_id,
        currency=STARS_CURRENCY,
        total=payment.stars,
        charge_id=payment.charge_id,
        admin=admin,
        reason=credit_reason(),
    )


async def payment_credit(
    *,
    provider_name: ProviderName,
    bill_id: str,
    charge_id: str,
    since: datetime,
    admin: AbstractBaseUser,
) -> BillTransition:
    """Credit a payment the provider reports as paid and our bill does not have, once:
    the provider is asked again first (YooKassa: the payment by its id; Telegram: the
    Star transactions since `since`), the credit goes through the bill jobs' service
    with `admin` and the reason in its ledger row, and the payer is told as by the bot.
    A second call credits nothing (`credited` is False). NotCredited: the provider does
    not confirm it, or it does not match the bill; ProviderError: no answer."""
    from backend.bot import client

    async with client.connect(providers=[provider_name]) as connection:
        provider = connection.providers.get(provider_name)
        if provider is None:
            raise NotCredited(_("%(provider)s is not connected") % {"provider": provider_name})
        if provider_name == ProviderName.YOOKASSA:
            transition = await _credit_yookassa(provider, bill_id, charge_id, admin)  # type: ignore[arg-type]
        elif provider_name == ProviderName.TELEGRAM and _listed(provider):
            transition = await _credit_stars(provider, bill_id, charge_id, since, admin)  # type: ignore[arg-type]
        else:
            raise NotCredited(_("%(provider)s lists no payments") % {"provider": provider_name})
        if transition.mismatch:
            raise NotCredited(_("the payment does not match the bill (the amount, the payer)"))
        if transition.credited:
            try:
                await connection.notify(transition)
            except Exception:  # the credit is committed; the message is best effort
                logger.exception("could not tell user about bill {}", bill_id)
        return transition
