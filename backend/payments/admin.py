from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from backend.common.display import moment
from backend.common.money import money_format
from backend.payments.flows import bill_refund
from backend.payments.models import Bill, LedgerEntry, UserNotice
from backend.payments.poller import check_now
from backend.payments.providers.base import ProviderError, ProviderRefused, Quote
from backend.payments.services import BalanceError, BillTransition
from backend.payments.vocabulary import ProviderName


class ReadOnlyAdmin(admin.ModelAdmin):
    """Bills and ledger rows change only through backend.payments.services. Their pages
    show `fields` (sums written by `money_format`), all read-only."""

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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

    @admin.display(description=_("amount"), ordering="amount")
    def sum(self, bill: Bill) -> str:
        return money_format(bill.amount, currency=bill.currency)

    @admin.display(description=_("to pay"))
    def invoice(self, bill: Bill) -> str:
        """What the provider asked of the user, when it is not the amount itself."""
        if bill.invoice_total is None or bill.invoice_currency in ("", bill.currency):
            return ""
        if bill.invoice_currency == "XTR":
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
