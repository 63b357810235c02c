"""«Рассылки» in the admin: write a broadcast (its preview shown as Telegram will show
it), start it, pause, resume or cancel it, watch its progress, and see each recipient's
outcome (filter and export). The writes go through backend.broadcasts.services; the
bot process sends."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from backend.admin_site import ReadOnlyAdmin
from backend.broadcasts import selectors, services
from backend.broadcasts.models import Broadcast, Delivery
from backend.broadcasts.telegram_html import TelegramHtmlError, telegram_html_preview
from backend.common.display import moment, number

CHANGE = "broadcasts.change_broadcast"
ADD = "broadcasts.add_broadcast"
# The users the users list's «Разослать выбранным» chose, until the broadcast is written.
CHOSEN_USERS = "broadcast_chosen_users"
REFRESH_SECONDS = 5  # a running broadcast's page reloads itself this often


class BroadcastForm(forms.ModelForm):
    button_url = forms.URLField(
        label=_("button URL"),
        required=False,
        max_length=2048,
        assume_scheme="https",
        help_text=_("https:// only; the button is shown only with its text."),
    )

    class Meta:
        model = Broadcast
        fields = ("text", "button_text", "button_url", "only_positive_balance")
        widgets = {"text": forms.Textarea(attrs={"rows": 8})}
        help_texts = {
            "text": _(
                "Telegram's HTML: <b>, <i>, <u>, <s>, <a href>, <code>, <pre>, <blockquote>, "
                "<tg-spoiler>; write <, > and & as &lt; &gt; &amp;. At most 4096 characters."
            ),
        }

    def clean(self):
        data = super().clean()
        try:
            services.broadcast_check(
                text=data.get("text") or "",
                button_text=data.get("button_text") or "",
                button_url=data.get("button_url") or "",
            )
        except services.BroadcastError as e:
            raise forms.ValidationError(str(e)) from None
        return data


@admin.register(Broadcast)
class BroadcastAdmin(admin.ModelAdmin):
    form = BroadcastForm
    list_display = ("number", "created", "short_text", "status", "recipients", "handled")
    list_filter = ("status",)
    change_form_template = "admin/broadcasts/broadcast/change_form.html"
    readonly = (
        "status",
        "preview",
        "button",
        "only_positive_balance",
        "chosen",
        "progress",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )

    def get_fields(self, request, obj=None):
        if obj is not None:
            return self.readonly
        if self._chosen(request) is not None:  # the audience is the users chosen
            return ("text", "button_text", "button_url")
        return self.form.Meta.fields

    def _chosen(self, request: HttpRequest) -> list[int] | None:
        """The users chosen in the users list, when this add page was opened for them."""
        if request.GET.get("chosen") != "1":
            return None
        return request.session.get(CHOSEN_USERS)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: Broadcast, form, change: bool) -> None:
        """Only a new one is saved here (a DRAFT, by the service); one made is not edited."""
        if change:
            return
        chosen = self._chosen(request)
        created = services.broadcast_create(
            text=obj.text,
            button_text=obj.button_text,
            button_url=obj.button_url,
            only_positive_balance=obj.only_positive_balance,
            admin=request.user,
            user_ids=chosen,
        )
        if chosen is not None:
            request.session.pop(CHOSEN_USERS, None)
        obj.pk, obj.status, obj.created_at = created.pk, created.status, created.created_at

    # --- the list and the page -------------------------------------------------------------

    @admin.display(description="№", ordering="pk")
    def number(self, broadcast: Broadcast) -> int:
        return broadcast.pk

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, broadcast: Broadcast) -> str:
        return moment(broadcast.created_at)

    @admin.display(description=_("text"))
    def short_text(self, broadcast: Broadcast) -> str:
        return broadcast.text if len(broadcast.text) <= 60 else broadcast.text[:59] + "…"

    @admin.display(description=_("recipients"), ordering="total")
    def recipients(self, broadcast: Broadcast) -> str:
        return number(broadcast.total)

    def get_queryset(self, request: HttpRequest):
        return selectors.broadcasts_with_pending(queryset=super().get_queryset(request))

    @admin.display(description=_("handled"))
    def handled(self, broadcast: Broadcast) -> str:
        return number(broadcast.total - broadcast.pending)

    @admin.display(description=_("preview"))
    def preview(self, broadcast: Broadcast) -> str:
        try:
            shown = telegram_html_preview(broadcast.text)
        except TelegramHtmlError as e:  # written before the check existed: say why
            return format_html('<span class="errornote">{}</span>', str(e))
        return format_html('<div class="tg-preview">{}</div>', mark_safe(shown))

    @admin.display(description=_("button"))
    def button(self, broadcast: Broadcast) -> str:
        if not broadcast.button_url:
            return "—"
        return format_html("{} → {}", broadcast.button_text, broadcast.button_url)

    @admin.display(description=_("progress"))
    def progress(self, broadcast: Broadcast) -> str:
        progress = selectors.broadcast_progress(broadcast_id=broadcast.pk)
        rows = [(status.label, number(progress.counts[status])) for status in Delivery.Status]
        table = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows)
        deliveries = reverse("admin:broadcasts_delivery_changelist")
        link = format_html(
            '<a href="{}?broadcast__id__exact={}">{}</a>',
            deliveries, broadcast.pk, _("Each recipient"),
        )  # fmt: skip
        speed = ""
        if progress.rate is not None and progress.eta is not None:
            speed = format_html(
                "<p>{}</p>",
                _("%(rate)s messages a second; ends about %(eta)s")
                % {"rate": f"{progress.rate:.1f}".replace(".", ","), "eta": moment(progress.eta)},
            )
        return format_html(
            '<table class="broadcast-progress">{}</table>{}<p>{}</p>', table, speed, link
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        chosen = self._chosen(request) if add else None
        context["chosen_count"] = None if chosen is None else number(len(chosen))
        if obj is not None:  # made: nothing on it is edited, it is only moved
            context.update(
                show_save=False, show_save_and_continue=False, show_save_and_add_another=False
            )
            context["refresh_seconds"] = REFRESH_SECONDS if obj.status in Broadcast.ACTIVE else None
            context["controls"] = self._controls(request, obj)
            if request.user.has_perm(ADD):
                context["test_url"] = reverse("admin:broadcasts_broadcast_test", args=[obj.pk])
                context["admin_ids"] = settings.ADMIN_TELEGRAM_IDS
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- start, pause, resume, cancel --------------------------------------------------------

    _MOVES = {
        "queue": (_("Start sending"), (Broadcast.Status.DRAFT,)),
        "pause": (_("Pause"), Broadcast.ACTIVE),
        "resume": (_("Resume"), (Broadcast.Status.PAUSED,)),
        "cancel": (
            _("Cancel the broadcast"),
            (Broadcast.Status.DRAFT, *Broadcast.ACTIVE, Broadcast.Status.PAUSED),
        ),
    }

    def _controls(self, request: HttpRequest, broadcast: Broadcast) -> list[tuple[str, str]]:
        """The buttons this broadcast's state allows: (url, label)."""
        if not request.user.has_perm(CHANGE):
            return []
        return [
            (reverse(f"admin:broadcasts_broadcast_{move}", args=[broadcast.pk]), label)
            for move, (label, allowed) in self._MOVES.items()
            if broadcast.status in allowed
        ]

    def get_urls(self):
        view = self.admin_site.admin_view
        moves = [
            path(
                f"<int:broadcast_id>/{move}/",
                view(require_POST(self._move_view(move))),
                name=f"broadcasts_broadcast_{move}",
            )
            for move in self._MOVES
        ]
        test = path(
            "<int:broadcast_id>/test/",
            view(require_POST(self.test_view)),
            name="broadcasts_broadcast_test",
        )
        return [*moves, test, *super().get_urls()]

    def test_view(self, request: HttpRequest, broadcast_id: int) -> HttpResponse:
        """«Отправить себе»: the message, now, to one of ADMIN_TELEGRAM_IDS, as the users
        will get it; the admin reads the result at once (one message: worth the wait)."""
        if not request.user.has_perm(ADD):
            raise PermissionDenied
        broadcast = get_object_or_404(Broadcast, pk=broadcast_id)
        back = redirect(reverse("admin:broadcasts_broadcast_change", args=[broadcast_id]))
        try:
            chat_id = int(request.POST.get("chat_id", ""))
        except ValueError:
            chat_id = 0
        if chat_id not in settings.ADMIN_TELEGRAM_IDS:
            self.message_user(request, _("Choose an id of ADMIN_TELEGRAM_IDS."), messages.ERROR)
            return back
        error = async_to_sync(_send_test)(broadcast, chat_id)
        if error:
            self.message_user(request, error, messages.ERROR)
        else:
            done = _("Sent to %(chat_id)s: look in Telegram.") % {"chat_id": chat_id}
            self.message_user(request, done, messages.SUCCESS)
        return back

    def _move_view(self, move: str):
        act = {
            "queue": services.broadcast_queue,
            "pause": services.broadcast_pause,
            "resume": services.broadcast_resume,
            "cancel": services.broadcast_cancel,
        }[move]

        def moved(request: HttpRequest, broadcast_id: int) -> HttpResponse:
            if not request.user.has_perm(CHANGE):
                raise PermissionDenied
            get_object_or_404(Broadcast, pk=broadcast_id)
            try:
                broadcast = act(broadcast_id=broadcast_id)
            except services.BroadcastError as e:
                self.message_user(request, str(e), messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("The broadcast is «%(status)s».")
                    % {"status": broadcast.get_status_display()},
                    messages.SUCCESS,
                )
            return redirect(reverse("admin:broadcasts_broadcast_change", args=[broadcast_id]))

        return moved


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Each recipient's outcome, read-only; the list's filters, and its export."""

    list_display = ("user", "status", "sent", "error")
    list_filter = ("status", "broadcast")
    search_fields = ("user__telegram_id", "user__username")
    list_select_related = ("user",)
    actions = ("export_csv",)
    fields = ("broadcast", "user", "status", "sent_at", "error")
    show_full_result_count = False

    @admin.display(description=_("sent"), ordering="sent_at")
    def sent(self, delivery: Delivery) -> str:
        return moment(delivery.sent_at)

    @admin.action(description=_("Export the chosen rows as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset) -> StreamingHttpResponse:
        response = StreamingHttpResponse(
            _csv_lines(queryset.select_related("user").order_by("pk")),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="deliveries.csv"'
        return response


async def _send_test(broadcast: Broadcast, chat_id: int) -> str:
    """Send the broadcast's message to `chat_id`; what went wrong, or ""."""
    from aiogram.exceptions import AiogramError  # aiogram: only when a test is sent

    from backend.bot import client, keyboards

    markup = None
    if broadcast.button_url:
        markup = keyboards.link(broadcast.button_text, broadcast.button_url)
    async with client.connect(providers=[]) as telegram:
        if telegram.bot is None:
            return str(_("TELEGRAM_API_TOKEN is not set here: nothing can be sent."))
        try:
            sent = await client.deliver(telegram.bot, chat_id, broadcast.text, reply_markup=markup)
        except AiogramError as e:
            return str(_("Telegram refused: %(error)s") % {"error": e})
    if sent.message is None:
        return str(_("Not delivered: %(why)s") % {"why": sent.error or _("the bot is blocked")})
    return ""


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(queryset) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(
        ["broadcast", "telegram_id", "username", "status", "sent_at", "error"]
    )
    for delivery in queryset.iterator(chunk_size=2000):
        user = delivery.user
        yield writer.writerow(
            [
                delivery.broadcast_id,
                user.telegram_id,
                user.username or "",
                delivery.status,
                delivery.sent_at.isoformat() if delivery.sent_at else "",
                delivery.error,
            ]
        )
