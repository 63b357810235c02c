"""The admin's model names in the cases Russian needs.

Django builds its phrases from a model's `verbose_name` alone: «Изменить %s», «Добавить
%s», «%(count)s %(name)s», «Выбрать все %(module_name)s (%(total_count)s)»… In Russian
the noun then stands in the wrong case or number («Изменить пользователь Telegram»,
«10 пользователи Telegram», «9 журнал баланса»). Each model the admin shows has its
phrases here, in English msgids that locale/ru turns into the right case: contexts
(`pgettext`) for the cases, `ngettext` for the counts (Russian has three plural forms).

`NamedAdmin` (mixed into every ModelAdmin by `backend.admin_site.AdminSite.register`,
Django's and the third-party apps' too) uses them for the titles and the bulk delete
action; `NamedChangeList` for the list's counter and its «select all» link, read by
backend/templates/admin/pagination.html and actions.html. What Django says in a
sentence of its own (the messages after a save or a delete, the delete confirmations)
is reworded in locale/ru so that it reads right with the nominative name.

A model missing here falls back to Django's phrases; tests/test_admin_russian.py
fails on a registered model without its names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django.contrib.admin.views.main import ChangeList
from django.db.models.options import Options
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext, pgettext_lazy


@dataclass(frozen=True)
class ModelNames:
    accusative: str  # Изменить «пользователя Telegram»
    count: Callable[[int], str]  # a format with %(count)s: «5 пользователей Telegram»
    all: str  # Выбрать «всех пользователей Telegram» (5)
    selected: str  # Удалить «выбранных пользователей Telegram»

    def counted(self, number: int, label: object = None) -> str:
        """`number` of them; `label` is what to print for it (e.g. «≈ 12», «5+»)."""
        return self.count(number) % {"count": number if label is None else label}


def _names(accusative, count, all_, selected) -> ModelNames:
    return ModelNames(accusative=accusative, count=count, all=all_, selected=selected)


# fmt: off
NAMES: dict[str, ModelNames] = {
    "users.telegramuser": _names(
        pgettext_lazy("accusative", "Telegram user"),
        lambda n: ngettext("%(count)s Telegram user", "%(count)s Telegram users", n),
        pgettext_lazy("select all", "all Telegram users"),
        pgettext_lazy("delete selected", "selected Telegram users"),
    ),
    "payments.bill": _names(
        pgettext_lazy("accusative", "bill"),
        lambda n: ngettext("%(count)s bill", "%(count)s bills", n),
        pgettext_lazy("select all", "all bills"),
        pgettext_lazy("delete selected", "selected bills"),
    ),
    "payments.ledgerentry": _names(
        pgettext_lazy("accusative", "balance ledger entry"),
        lambda n: ngettext("%(count)s balance ledger entry", "%(count)s balance ledger entries", n),
        pgettext_lazy("select all", "all balance ledger entries"),
        pgettext_lazy("delete selected", "selected balance ledger entries"),
    ),
    "broadcasts.broadcast": _names(
        pgettext_lazy("accusative", "broadcast"),
        lambda n: ngettext("%(count)s broadcast", "%(count)s broadcasts", n),
        pgettext_lazy("select all", "all broadcasts"),
        pgettext_lazy("delete selected", "selected broadcasts"),
    ),
    "broadcasts.delivery": _names(
        pgettext_lazy("accusative", "delivery"),
        lambda n: ngettext("%(count)s delivery", "%(count)s deliveries", n),
        pgettext_lazy("select all", "all deliveries"),
        pgettext_lazy("delete selected", "selected deliveries"),
    ),
    "auth.user": _names(
        pgettext_lazy("accusative", "user"),
        lambda n: ngettext("%(count)s user", "%(count)s users", n),
        pgettext_lazy("select all", "all users"),
        pgettext_lazy("delete selected", "selected users"),
    ),
    "auth.group": _names(
        pgettext_lazy("accusative", "group"),
        lambda n: ngettext("%(count)s group", "%(count)s groups", n),
        pgettext_lazy("select all", "all groups"),
        pgettext_lazy("delete selected", "selected groups"),
    ),
    "otp_totp.totpdevice": _names(
        pgettext_lazy("accusative", "TOTP device"),
        lambda n: ngettext("%(count)s TOTP device", "%(count)s TOTP devices", n),
        pgettext_lazy("select all", "all TOTP devices"),
        pgettext_lazy("delete selected", "selected TOTP devices"),
    ),
    "axes.accessattempt": _names(
        pgettext_lazy("accusative", "access attempt"),
        lambda n: ngettext("%(count)s access attempt", "%(count)s access attempts", n),
        pgettext_lazy("select all", "all access attempts"),
        pgettext_lazy("delete selected", "selected access attempts"),
    ),
    "axes.accesslog": _names(
        pgettext_lazy("accusative", "access log"),
        lambda n: ngettext("%(count)s access log", "%(count)s access logs", n),
        pgettext_lazy("select all", "all access logs"),
        pgettext_lazy("delete selected", "selected access logs"),
    ),
    "axes.accessfailurelog": _names(
        pgettext_lazy("accusative", "access failure"),
        lambda n: ngettext("%(count)s access failure", "%(count)s access failures", n),
        pgettext_lazy("select all", "all access failures"),
        pgettext_lazy("delete selected", "selected access failures"),
    ),
}
# fmt: on


def names_of(opts: Options) -> ModelNames | None:
    return NAMES.get(opts.label_lower)


class NamedChangeList(ChangeList):
    """The list's counter and «select all» with the right case and plural form."""

    def count_label(self) -> object:
        """How the count is printed: the number (the users list: «≈ N», «N+»)."""
        return self.result_count

    @property
    def count_text(self) -> str:
        names = names_of(self.opts)
        if names is None:
            name = (
                self.opts.verbose_name if self.result_count == 1 else self.opts.verbose_name_plural
            )
            return f"{self.count_label()} {name}"
        return names.counted(self.result_count, self.count_label())

    @property
    def select_all_text(self) -> str:
        names = names_of(self.opts)
        if names is None:
            return gettext("Select all %(total_count)s %(module_name)s") % {
                "total_count": self.count_label(),
                "module_name": self.opts.verbose_name_plural,
            }
        return gettext("Select %(all)s (%(count)s)") % {
            "all": names.all,
            "count": self.count_label(),
        }

    @property
    def add_text(self) -> str:
        names = names_of(self.opts)
        name = self.opts.verbose_name if names is None else names.accusative
        return gettext("Add %(name)s") % {"name": name}


@cache
def _named(changelist: type[ChangeList]) -> type[ChangeList]:
    """`changelist` with `NamedChangeList` mixed in, made once per class."""
    if issubclass(changelist, NamedChangeList):
        return changelist
    return type(changelist.__name__, (NamedChangeList, changelist), {})


class NamedAdmin:
    """Mixed into every ModelAdmin of the site: titles in the right case."""

    def get_changelist(self, request, **kwargs):
        return _named(super().get_changelist(request, **kwargs))

    def changelist_view(self, request, extra_context=None):
        # Django's «Выберите %s для изменения» takes the singular in the nominative:
        # the list is titled by its plural name instead («Пользователи Telegram»).
        extra_context = {"title": capfirst(self.opts.verbose_name_plural), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        names = names_of(self.opts)
        if names is not None:
            if add:
                title = gettext("Add %s")
            elif self.has_change_permission(request, obj):
                title = gettext("Change %s")
            else:
                title = gettext("View %s")
            context["title"] = title % names.accusative
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        names = names_of(self.opts)
        if names is not None and "delete_selected" in actions:
            function, name, _ = actions["delete_selected"]
            description = gettext("Delete %(selected)s") % {"selected": names.selected}
            actions["delete_selected"] = (function, name, description)
        return actions
