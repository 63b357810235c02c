import os
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from loguru import logger

from backend.admin_names import NamedChangeList
from backend.common.display import moment
from backend.common.money import money_format
from backend.log_files import is_single_file, log_files
from backend.payments.admin import LedgerColumns
from backend.payments.models import Bill, LedgerEntry
from backend.payments.services import AdjustmentReplayed, BalanceError, balance_adjust
from backend.users import exports
from backend.users.forms import BalanceAdjustmentForm
from backend.users.models import TelegramUser
from backend.users.paginators import COUNT_CAP, CappedCountPaginator
from backend.users.selectors import users_search
from backend.users.services import user_block, user_unblock

EXPORT_PERMISSION = "users.export_users"
LOGS_PERMISSION = "users.download_logs"
INLINE_ROWS = 50
# Beyond any real list (a billion users): a bigger number would overflow the LIMIT.
MAX_PAGE = 10_000_000


class BalanceFilter(admin.SimpleListFilter):
    title = _("balance")
    parameter_name = "balance"

    def lookups(self, request, model_admin):
        return [("positive", _("above zero")), ("zero", _("zero"))]

    def queryset(self, request, queryset):
        if self.value() == "positive":
            return queryset.filter(balance__gt=0)
        if self.value() == "zero":
            return queryset.filter(balance=0)
        return queryset


class UsersChangeList(NamedChangeList):
    """The list's texts with the count as the paginator knows it (exact, «≈ N», «N+»):
    Django's own messages, with the paginator's label for the number."""

    def count_label(self) -> str:
        return self.paginator.count_label

    @property
    def results_label(self) -> str:
        return ngettext("%(counter)s result", "%(counter)s results", self.result_count) % {
            "counter": self.paginator.count_label
        }

    @property
    def selection_note_all(self) -> str:
        return ngettext(
            "%(total_count)s selected", "All %(total_count)s selected", self.result_count
        ) % {"total_count": self.paginator.count_label}


class ReadOnlyInline(admin.TabularInline):
    """The latest rows of a user's history, newest first; nothing here can be edited."""

    extra = 0
    can_delete = False
    ordering = ("-created_at", "-pk")

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def latest_of(self, queryset: QuerySet, user: TelegramUser) -> QuerySet:
        """The user's latest rows (the formset filters by user again, and cannot take a
        sliced queryset: hence their keys, read first: MySQL takes no LIMIT in an IN
        subquery)."""
        latest = queryset.filter(user=user).order_by("-created_at", "-pk").values_list("pk")
        return queryset.filter(pk__in=[pk for (pk,) in latest[:INLINE_ROWS]])


class LedgerInline(LedgerColumns, ReadOnlyInline):
    model = LedgerEntry
    fields = ("created", "kind", "change", "balance", "bill_ref", "admin", "reason")
    verbose_name_plural = format_lazy(_("balance ledger (latest {rows})"), rows=INLINE_ROWS)


class BillInline(ReadOnlyInline):
    model = Bill
    fields = ("id", "sum", "status", "created", "expires", "credited")
    verbose_name_plural = format_lazy(_("bills (latest {rows})"), rows=INLINE_ROWS)

    @admin.display(description=_("amount"))
    def sum(self, bill: Bill) -> str:
        return money_format(bill.amount, currency=bill.currency)

    @admin.display(description=_("created"))
    def created(self, bill: Bill) -> str:
        return moment(bill.created_at)

    @admin.display(description=_("expires"))
    def expires(self, bill: Bill) -> str:
        return moment(bill.expires_at)

    @admin.display(description=_("credited"))
    def credited(self, bill: Bill) -> str:
        return moment(bill.credited_at)


@admin.register(TelegramUser)
class TelegramUserAdmin(admin.ModelAdmin):
    # What fits a 1366 px screen (tests/test_admin_browser.py); the rest (the language,
    # «заблокировал бота») is on the user's page, and every column is in the exports.
    list_display = ("telegram_id", "username", "name", "money", "is_blocked", "seen", "joined")
    list_display_links = ("telegram_id", "username")
    list_filter = ("is_blocked", BalanceFilter)
    search_fields = ("username",)  # the search itself: users_search
    search_help_text = _("The whole Telegram ID, or the start of a username, first or last name")
    export_help_text = exports.FORMULA_GUARD_HELP  # under the export buttons
    ordering = ("-pk",)
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) of the whole table on every page
    actions = ("block_users", "unblock_users", "broadcast_to_users")
    fields = (
        "telegram_id",
        "username",
        "first_name",
        "last_name",
        "language_code",
        "money",
        "is_blocked",
        "created_at",
        "last_seen_at",
        "bot_blocked_at",
        "receipt_contact",
    )
    readonly_fields = tuple(f for f in fields if f != "is_blocked")
    inlines = (LedgerInline, BillInline)

    @admin.display(description=_("full name"), ordering="first_name")
    def name(self, user: TelegramUser) -> str:
        return " ".join(part for part in (user.first_name, user.last_name) if part)

    @admin.display(description=_("balance"), ordering="balance")
    def money(self, user: TelegramUser) -> str:
        return money_format(user.balance)

    @admin.display(description=_("last seen"), ordering="last_seen_at")
    def seen(self, user: TelegramUser) -> str:
        return moment(user.last_seen_at)

    @admin.display(description=_("created"), ordering="created_at")
    def joined(self, user: TelegramUser) -> str:
        return moment(user.created_at)

    def has_add_permission(self, request) -> bool:
        return False  # users come from Telegram

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # their ledger must stay

    def get_changelist(self, request, **kwargs):
        return UsersChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        """Counts capped at COUNT_CAP rows, or enough for the page asked for and a few
        after it."""
        page = request.GET.get(PAGE_VAR, "")
        cap = COUNT_CAP
        if page.isascii() and page.isdigit():
            if int(page) > MAX_PAGE:
                raise BadRequest(_("No such page"))
            cap = max(COUNT_CAP, (int(page) + 5) * per_page)
        return CappedCountPaginator(
            queryset,
            per_page,
            orphans=orphans,
            allow_empty_first_page=allow_empty_first_page,
            cap=cap,
        )

    def get_search_results(self, request, queryset, search_term):
        return users_search(queryset=queryset, term=search_term), False

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if obj is not None and isinstance(inline, ReadOnlyInline):
            kwargs["queryset"] = inline.latest_of(kwargs["queryset"], obj)
        return kwargs

    def save_model(self, request, obj: TelegramUser, form, change: bool) -> None:
        """Only the blocked flag is editable here, and it goes through the service:
        the row is never saved whole, so a top-up that lands meanwhile survives."""
        if "is_blocked" in form.changed_data:
            service = user_block if obj.is_blocked else user_unblock
            service(telegram_id=obj.telegram_id, admin=request.user)

    # --- actions -----------------------------------------------------------------
    def has_broadcast_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("broadcasts.add_broadcast")

    @admin.action(description=_("Broadcast to selected users"), permissions=["broadcast"])
    def broadcast_to_users(self, request: HttpRequest, queryset) -> HttpResponse:
        """The chosen users (all the list's, with «select all») are kept in the session
        for the broadcast's form, which the admin is sent to."""
        from backend.broadcasts.admin import CHOSEN_USERS

        request.session[CHOSEN_USERS] = list(queryset.values_list("pk", flat=True))
        return redirect(reverse("admin:broadcasts_broadcast_add") + "?chosen=1")

    @admin.action(description=_("Block selected users"), permissions=["change"])
    def block_users(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_blocked(request, queryset, True)

    @admin.action(description=_("Unblock selected users"), permissions=["change"])
    def unblock_users(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_blocked(request, queryset, False)

    def _set_blocked(self, request: HttpRequest, queryset: QuerySet, blocked: bool) -> None:
        service = user_block if blocked else user_unblock
        users = list(queryset)
        for user in users:
            service(telegram_id=user.telegram_id, admin=request.user)
            self.log_change(request, user, _("Blocked") if blocked else _("Unblocked"))
        text = _("Users blocked: %(count)s.") if blocked else _("Users unblocked: %(count)s.")
        self.message_user(request, text % {"count": len(users)}, messages.SUCCESS)

    # --- extra pages ---------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        name = "users_telegramuser"
        return [
            path("export/csv/", view(self.export_csv_view), name=f"{name}_export_csv"),
            path("export/xlsx/", view(self.export_xlsx_view), name=f"{name}_export_xlsx"),
            path("logs/", view(self.logs_view), name=f"{name}_logs"),
            path("logs/<str:file_name>/", view(self.log_file_view), name=f"{name}_log_file"),
            path("<path:object_id>/adjust/", view(self.adjust_view), name=f"{name}_adjust"),
            path(
                "<path:object_id>/block/",
                view(require_POST(self.block_view)),
                {"blocked": True},
                name=f"{name}_block",
            ),
            path(
                "<path:object_id>/unblock/",
                view(require_POST(self.block_view)),
                {"blocked": False},
                name=f"{name}_unblock",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_export": request.user.has_perm(EXPORT_PERMISSION),
            "can_download_logs": request.user.has_perm(LOGS_PERMISSION),
        }
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        if isinstance(context.get("cl"), UsersChangeList):
            context["selection_note_all"] = context["cl"].selection_note_all
        return response

    def _user_or_404(self, request: HttpRequest, object_id: str) -> TelegramUser:
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404(_("No such user"))
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        return user

    def block_view(self, request: HttpRequest, object_id: str, blocked: bool) -> HttpResponse:
        user = self._user_or_404(request, object_id)
        self._set_blocked(request, TelegramUser.objects.filter(pk=user.pk), blocked)
        return redirect(reverse("admin:users_telegramuser_change", args=[user.pk]))

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        user = self._user_or_404(request, object_id)
        form = BalanceAdjustmentForm(request.POST or None, initial={"seen_balance": user.balance})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                entry = balance_adjust(
                    user=user,
                    amount=data["amount"],
                    reason=data["reason"],
                    admin=request.user,
                    # "set to" is meant against the balance the admin saw
                    expected_balance=data["seen_balance"] if data["set_to"] is not None else None,
                    idempotency_key=data["key"],
                    notify=data["notify"],
                    show_reason=data["show_reason"],
                )
            except AdjustmentReplayed as e:
                self.message_user(
                    request,
                    _(
                        "This form was sent already and changed the balance by %(amount)s "
                        "then; nothing has changed now."
                    )
                    % {"amount": money_format(e.entry.amount, signed=True)},
                    messages.WARNING,
                )
                return redirect(reverse("admin:users_telegramuser_change", args=[user.pk]))
            except BalanceError as e:
                form.add_error(None, str(e))
                # Show the balance as it is now, and measure the next "set to" against it.
                user.refresh_from_db()
                form.data = form.data.copy()
                form.data["seen_balance"] = str(user.balance)
            else:
                self.log_change(
                    request,
                    user,
                    _("Balance %(amount)s: %(reason)s")
                    % {"amount": money_format(entry.amount, signed=True), "reason": entry.reason},
                )
                done = _("Balance changed by %(amount)s, now %(balance)s.") % {
                    "amount": money_format(entry.amount, signed=True),
                    "balance": money_format(entry.balance_after),
                }
                if data["notify"]:
                    done += " " + _("The bot will tell the user.")
                self.message_user(request, done, messages.SUCCESS)
                return redirect(reverse("admin:users_telegramuser_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Balance change: %(user)s") % {"user": user},
            "opts": self.opts,
            "original": user,
            "balance": money_format(user.balance),
            "form": form,
        }
        return TemplateResponse(request, "admin/users/telegramuser/adjust_balance.html", context)

    def _require(self, request: HttpRequest, permission: str) -> None:
        if not request.user.has_perm(permission):
            raise PermissionDenied

    def _listed(self, request: HttpRequest) -> QuerySet:
        """The users the list shows with the same search and filters."""
        try:
            return self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            raise SuspiciousOperation("export: filters the list does not know") from None

    def _export_name(self, extension: str) -> str:
        return f"users-{timezone.localtime():%Y-%m-%d-%H%M}.{extension}"

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request, EXPORT_PERMISSION)
        queryset = self._listed(request)
        logger.info("users exported as CSV by {}", request.user.get_username())
        response = StreamingHttpResponse(
            exports.csv_stream(queryset=queryset, bom=True), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{self._export_name("csv")}"'
        return response

    def export_xlsx_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request, EXPORT_PERMISSION)
        queryset = self._listed(request)
        logger.info("users exported as XLSX by {}", request.user.get_username())
        response = StreamingHttpResponse(
            exports.xlsx_stream(queryset=queryset), content_type=exports.XLSX_CONTENT_TYPE
        )
        response["Content-Disposition"] = f'attachment; filename="{self._export_name("xlsx")}"'
        return response

    def logs_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request, LOGS_PERMISSION)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Logs"),
            "opts": self.opts,
            "files": [
                {
                    "name": name,
                    "size": stat.st_size,
                    "modified": datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                }
                for name, stat in log_files()
            ],
        }
        return TemplateResponse(request, "admin/users/telegramuser/logs.html", context)

    def log_file_view(self, request: HttpRequest, file_name: str) -> HttpResponse:
        self._require(request, LOGS_PERMISSION)
        # Only a name from the folder's own listing: never a path taken from the request.
        listed = dict(log_files())
        if file_name not in listed:
            raise Http404(_("No such log file"))
        # O_NOFOLLOW: a file swapped for a symlink since the listing is not followed;
        # O_NONBLOCK: nor does a FIFO put there hold the request. What was opened must
        # be the very file listed (device and inode), still a regular file with one
        # link: a hard link swapped in meanwhile is another inode, even once its other
        # name's link is gone again.
        path = Path(settings.LOG_DIR) / file_name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # rotated away, or turned into a link, meanwhile
            raise Http404(_("No such log file")) from None
        opened, info = os.fstat(fd), listed[file_name]
        if not is_single_file(opened) or (opened.st_dev, opened.st_ino) != (
            info.st_dev,
            info.st_ino,
        ):
            os.close(fd)
            raise Http404(_("No such log file"))
        handle = os.fdopen(fd, "rb")
        logger.info("log {} downloaded by {}", file_name, request.user.get_username())
        return FileResponse(handle, as_attachment=True, filename=file_name)
