from django.contrib import admin

from backend.payments.models import Bill, LedgerEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """Bills and ledger rows change only through backend.payments.services."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Bill)
class BillAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "currency", "status", "created_at", "credited_at")
    list_filter = ("status",)
    search_fields = ("=id", "=user__telegram_id")
    list_select_related = ("user",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "kind",
        "amount",
        "balance_after",
        "bill",
        "admin",
        "reason",
    )
    list_filter = ("kind",)
    search_fields = ("=user__telegram_id",)
    list_select_related = ("user", "bill", "admin")
