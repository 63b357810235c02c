"""The admin server's share of the payments: YooKassa's HTTP notifications, so an
install that polls Telegram (no webhook listener) behind a proxy can take them too."""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from backend.payments.notifications import NotificationAnswer, yookassa_notification_handle
from backend.payments.providers.base import PolledProvider
from backend.payments.vocabulary import ProviderName
from backend.security import client_ip


async def _handle(body: bytes, address: str | None) -> NotificationAnswer:
    # The bot's client, as the admin's «check now» has it: YooKassa to ask, the bot to
    # tell the owner (nobody is told without TELEGRAM_API_TOKEN). Imported here: aiogram
    # takes seconds to import, and only this request needs it.
    from backend.bot import client

    async with client.connect(providers=[ProviderName.YOOKASSA]) as connection:
        provider = connection.providers[ProviderName.YOOKASSA]
        if not isinstance(provider, PolledProvider):
            raise TypeError(f"{type(provider).__name__} is not asked about its bills")
        return await yookassa_notification_handle(
            body=body, address=address, provider=provider, notify=connection.notify
        )


@csrf_exempt  # YooKassa has no cookie or token of ours: the payment is asked about instead
def yookassa_notification(request: HttpRequest) -> HttpResponse:
    """POST /payments/yookassa/notifications: 404 unless yookassa is a way to pay."""
    if ProviderName.YOOKASSA not in settings.PAYMENT_PROVIDERS:
        raise Http404("YooKassa is not a way to pay here")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    answer = async_to_sync(_handle)(request.body, client_ip(request))
    return HttpResponse(answer.text, status=answer.status, content_type="text/plain")
