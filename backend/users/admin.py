from django.contrib import admin

from backend.users.models import TelegramUser


@admin.register(TelegramUser)
class TelegramUserAdmin(admin.ModelAdmin):
    list_display = (
        "telegram_id",
        "username",
        "first_name",
        "last_name",
        "balance",
        "is_blocked",
        "last_seen_at",
    )
    list_filter = ("is_blocked",)
    search_fields = ("=telegram_id", "username", "first_name", "last_name")
    readonly_fields = ("telegram_id", "balance", "created_at", "last_seen_at")
    fields = (
        "telegram_id",
        "username",
        "first_name",
        "last_name",
        "language_code",
        "balance",
        "is_blocked",
        "created_at",
        "last_seen_at",
    )
