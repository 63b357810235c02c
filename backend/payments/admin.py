from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from backend.admin_site import ReadOnlyAdmin
from backend.common.display import moment
from backend.common.money import money_format
from backend.payments.flows import bill_refund
from backend.payments.models import Bill, LedgerEntry, UserNotice
from backend.payments.poller import check_now
from backend.payments.providers.base import ProviderError, ProviderRefused, Quote
from backend.payments.reconciliation import (
    NotCredited,
    default_days,
    payment_credit,
    period,
    statement_for_period,
)
from backend.payments.services import BalanceError, BillTransition
from backend.payments.vocabulary import STARS_CURRENCY, ProviderName


def search_by_id_or_telegram_id(
    queryset: QuerySet, term: str, id_field: str = "pk", charge_field: str | None = None
) -> QuerySet:
    term = term.strip()
    if not term:
        return queryset
    condition = Q(**{id_field: term})
    if charge_field:
        condition |= Q(**{charge_field: term})
    if term.isdigit() and len(term) <= 19:
        condition |= Q(user__telegram_id=int(term))
    return queryset.filter(condition)


async def _check_now(bills: list[Bill]) -> list[BillTransition | Exception]:
    """What the bill jobs do to these bills, right now, at whichever provider each has;
    the users hear of it as from the bot (when the bot token is set here)."""
    from backend.bot import client  # aiogram: only when an action needs it

    async with client.connect(providers={bill.provider for bill in bills}) as telegram:
        return await check_now(bills=bills, providers=telegram.providers, notify=telegram.notify)


async def _refund(bill_ids: list[str], admin_user) -> list[tuple[str, str | None]]:
    """Refund each bill through the bot's token; (bill id, why not or None) for each."""
    from backend.bot import client

    results = []
    async with client.connect(providers=[ProviderName.TELEGRAM]) as telegram:
        provider = telegram.providers[ProviderName.TELEGRAM]
        for bill_id in bill_ids:
            try:
                await bill_refund(provider=provider, bill_id=bill_id, admin=admin_user)
            except BalanceError as e:
                results.append((bill_id, str(e)))
            except ProviderRefused as e:
                results.append((bill_id, _("Telegram refused: %(error)s") % {"error": e}))
            except ProviderError as e:
                results.append(
                    (bill_id, _("no answer from Telegram (%(error)s); try again") % {"error": e})
                )
            else:
                results.append((bill_id, None))
    return results


class PeriodForm(forms.Form):
    """The reconciliation's period: two days, both included."""

    since = forms.DateField(label=_("from"), widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("to"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError(_("The period ends before it begins."))
        return data


class CreditForm(PeriodForm):
    """«Зачислить»: which payment of which bill; the provider confirms it again."""

    provider = forms.ChoiceField(
        choices=[(p, p) for p in (ProviderName.YOOKASSA, ProviderName.TELEGRAM)]
    )
    bill_id = forms.CharField(max_length=64)
    charge_id = forms.CharField(max_length=255)


@admin.register(Bill)
class BillAdmin(ReadOnlyAdmin):
    # What fits a 1366 px screen (tests/test_admin_browser.py); the provider's status,
    # the charge ids and the other times are on the bill's page.
    list_display = ("id", "user", "sum", "invoice", "status", "provider", "created", "credited")
    fields = (
        "id",
        "user",
        "provider",
        "sum",
        "invoice",
        "status",
        "provider_status",
        "pay_url",
        "error",
        "created_at",
        "expires_at",
        "status_changed_at",
        "credited_at",
        "charge_id",
        "provider_charge_id",
    )
    list_filter = ("status", "provider", "created_at")
    search_fields = ("id",)  # the search itself: get_search_results
    search_help_text = _("Bill ID or the user's Telegram ID")
    list_select_related = ("user",)
    ordering = ("-created_at",)
    show_full_result_count = False
    actions = ("check_now", "refund")

    def get_search_results(self, request, queryset, search_term):
        return search_by_id_or_telegram_id(queryset, search_term, charge_field="charge_id"), False

    # --- «Сверка платежей» ------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "reconciliation/",
                view(self.reconciliation_view),
                name="payments_bill_reconciliation",
            ),
            path(
                "reconciliation/credit/",
                view(require_POST(self.reconciliation_credit_view)),
                name="payments_bill_reconciliation_credit",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_reconcile": self.has_view_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def reconciliation_view(self, request: HttpRequest) -> HttpResponse:
        """The period's payments at the providers beside our bills and ledger: the rows
        that differ first, a «Зачислить» button by each missing credit."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        first, last = default_days()
        form = PeriodForm(request.GET or None, initial={"since": first, "until": last})
        statement = None
        if not form.is_bound or form.is_valid():
            if form.is_bound:
                first, last = form.cleaned_data["since"], form.cleaned_data["until"]
            since, until = period(first, last)
            statement = async_to_sync(statement_for_period)(since=since, until=until)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Payment reconciliation"),
            "opts": self.opts,
            "form": form,
            "statement": statement,
            "first": first,
            "last": last,
            "can_credit": self.has_check_permission(request),
        }
        return TemplateResponse(request, "admin/payments/bill/reconciliation.html", context)

    def reconciliation_credit_view(self, request: HttpRequest) -> HttpResponse:
        """«Зачислить»: one missing payment, confirmed by its provider again, credited
        once through the services, with this admin's name in the ledger."""
        if not self.has_check_permission(request):
            raise PermissionDenied
        form = CreditForm(request.POST)
        if not form.is_valid():
            self.message_user(request, _("The form is not valid."), messages.ERROR)
            return redirect(reverse("admin:payments_bill_reconciliation"))
        data = form.cleaned_data
        back = (
            reverse("admin:payments_bill_reconciliation")
            + "?"
            + urlencode({"since": data["since"].isoformat(), "until": data["until"].isoformat()})
        )
        try:
            transition = async_to_sync(payment_credit)(
                provider_name=ProviderName(data["provider"]),
                bill_id=data["bill_id"],
                charge_id=data["charge_id"],
                since=period(data["since"], data["until"])[0],
                admin=request.user,
            )
        except NotCredited as e:
            message = _("Bill %(bill)s not credited: %(error)s")
            self.message_user(
                request, message % {"bill": data["bill_id"], "error": e}, messages.ERROR
            )
            return redirect(back)
        except ProviderError as e:
            message = _("The payment provider is unavailable: %(error)s")
            self.message_user(request, message % {"error": e}, messages.ERROR)
            return redirect(back)
        bill = transition.bill
        if transition.credited:
            self.log_change(request, bill, _("Credited from the reconciliation of payments"))
            message = _("Bill %(bill)s credited: %(amount)s, the balance is %(balance)s now.")
            self.message_user(
                request,
                message
                % {
                    "bill": bill.pk,
                    "amount": money_format(bill.amount, signed=True),
                    "balance": money_format(transition.balance),
                },
                messages.SUCCESS,
            )
        else:
            message = _("Bill %(bill)s had been credited already; nothing has changed now.")
            self.message_user(request, message % {"bill": bill.pk}, messages.WARNING)
        return redirect(back)

    @admin.display(description=_("amount"), ordering="amount")
    def sum(self, bill: Bill) -> str:
        return money_format(bill.amount, currency=bill.currency)

    @admin.display(description=_("to pay"))
    def invoice(self, bill: Bill) -> str:
        """What the provider asked of the user, when it is not the amount itself."""
        if bill.invoice_total is None or bill.invoice_currency in ("", bill.currency):
            return ""
        if bill.invoice_currency == STARS_CURRENCY:
            return f"{bill.invoice_total} ⭐"
        quote = Quote(bill.invoice_currency, bill.invoice_total)
        return money_format(quote.amount, currency=bill.invoice_currency)

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, bill: Bill) -> str:
        return moment(bill.created_at)

    @admin.display(description=_("credited"), ordering="credited_at")
    def credited(self, bill: Bill) -> str:
        return moment(bill.credited_at)

    def get_actions(self, request: HttpRequest):
        """Only the actions of the providers that are on (PAYMENT_PROVIDERS): no refund in
        Telegram Stars while Telegram payments are off. «Check now» asks whichever
        provider each bill has."""
        actions = super().get_actions(request)
        if ProviderName.TELEGRAM not in settings.PAYMENT_PROVIDERS:
            actions.pop("refund", None)
        return actions

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.refund_bill")

    @admin.action(description=_("Refund the Telegram Stars payment"), permissions=["refund"])
    def refund(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not settings.TELEGRAM_API_TOKEN:
            self.message_user(
                request,
                _("TELEGRAM_API_TOKEN is not set here: refunds go through the bot's token."),
                messages.ERROR,
            )
            return
        bills = list(queryset.values_list("pk", flat=True))
        for bill_id, error in async_to_sync(_refund)(bills, request.user):
            if error is None:
                self.message_user(
                    request, _("Bill %(bill)s refunded.") % {"bill": bill_id}, messages.SUCCESS
                )
            else:
                self.message_user(
                    request,
                    _("Bill %(bill)s not refunded: %(error)s") % {"bill": bill_id, "error": error},
                    messages.ERROR,
                )

    def has_check_permission(self, request: HttpRequest) -> bool:
        """«Check now» writes bill states, credits balances and calls the provider: it
        needs the change permission on bills, not the view one. The bills stay read-only
        for everyone (`has_change_permission` is False): this is the action's own check."""
        return request.user.has_perm("payments.change_bill")

    @admin.action(description=_("Check now at the payment provider"), permissions=["check"])
    def check_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        checkable = Bill.OPEN_STATUSES + Bill.LATE_PAYABLE
        bills = list(queryset.filter(status__in=checkable).select_related("user"))
        if not bills:
            self.message_user(request, _("None of the selected bills is open."), messages.WARNING)
            return
        try:
            results = async_to_sync(_check_now)(bills)
        except ProviderError as e:
            self.message_user(
                request,
                _("The payment provider is unavailable: %(error)s") % {"error": e},
                messages.ERROR,
            )
            return
        failed = [r for r in results if isinstance(r, Exception)]
        moved = [r for r in results if isinstance(r, BillTransition) and r.changed]
        paid = sum(1 for r in moved if r.credited)
        self.message_user(
            request,
            _(
                "Bills checked: %(checked)s; changed status: %(moved)s, "
                "paid and credited: %(paid)s; could not be checked: %(failed)s."
            )
            % {"checked": len(bills), "moved": len(moved), "paid": paid, "failed": len(failed)},
            messages.ERROR if failed else messages.SUCCESS,
        )


class LedgerColumns:
    """A ledger row's columns as the admin shows them: in its list and on a user's page."""

    @admin.display(description=_("time"), ordering="created_at")
    def created(self, entry: LedgerEntry) -> str:
        return moment(entry.created_at)

    @admin.display(description=_("amount"), ordering="amount")
    def change(self, entry: LedgerEntry) -> str:
        return money_format(entry.amount, signed=True)

    @admin.display(description=_("balance after"))
    def balance(self, entry: LedgerEntry) -> str:
        return money_format(entry.balance_after)

    @admin.display(description=_("bill"))
    def bill_ref(self, entry: LedgerEntry) -> str:
        return entry.bill_id or ""


@admin.register(LedgerEntry)
class LedgerEntryAdmin(LedgerColumns, ReadOnlyAdmin):
    list_display = ("created", "user", "kind", "change", "balance", "bill_ref", "admin", "reason")
    fields = (
        "created_at",
        "user",
        "kind",
        "change",
        "balance",
        "bill",
        "admin",
        "reason",
        "notice_state",
    )
    list_filter = ("kind", "created_at")
    search_fields = ("bill__id",)
    search_help_text = _("Bill ID or the user's Telegram ID")
    list_select_related = ("user", "admin")
    ordering = ("-created_at", "-pk")
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        return search_by_id_or_telegram_id(queryset, search_term, "bill_id"), False

    @admin.display(description=_("notice to the user"))
    def notice_state(self, entry: LedgerEntry) -> str:
        """What became of the message telling the user of this change, if any."""
        notice = UserNotice.objects.filter(entry=entry).first()
        if notice is None:
            return _("none")
        state = str(notice.get_status_display())
        if notice.sent_at is not None:
            state += ", " + moment(notice.sent_at)
        return state + (f" ({notice.error})" if notice.error else "")
