"""YooKassa's HTTP notifications (POST /payments/yookassa/notifications), for whichever
server takes them: the bot's webhook listener and the admin server both call
`yookassa_notification_handle` and send back what it answers.

The body is never trusted: only the payment id is taken from it. The bill that records
that payment id is then checked exactly as the poller and the check button check it
(`flows.bill_check`: YooKassa is asked, `GET /payments/{id}` with our key, and its
answer applied), so a forged «payment.succeeded» for a payment still pending changes
nothing. The owner is told what changed by the same rule as the poller's.

Answers: 200 once the bill's state is committed (or when there is nothing of ours to
do: a payment id no bill records, an event that is not a payment's); 400 for a body
that is not a notification; 403 from an address outside YooKassa's ranges when
YOOKASSA_NOTIFY_IP_CHECK is on; 5xx for any failure (YooKassa unreachable, the database
down), so YooKassa sends the notification again. The poller stays the fallback for a
notification that never comes.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from django.conf import settings
from loguru import logger

from backend.payments import selectors
from backend.payments.flows import Notify, bill_check, bill_news
from backend.payments.models import Bill
from backend.payments.providers.base import PolledProvider, ProviderError
from backend.payments.vocabulary import ProviderName

NOTIFICATION_PATH = "/payments/yookassa/notifications"
# https://yookassa.ru/developers/using-api/webhooks#ip
YOOKASSA_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "185.71.76.0/27",
        "185.71.77.0/27",
        "77.75.153.0/25",
        "77.75.156.11/32",
        "77.75.156.35/32",
        "77.75.154.128/25",
        "2a02:5180::/32",
    )
)
PAYMENT_ID_MAX = 64  # YooKassa's ids are UUIDs (36 characters)


@dataclass(frozen=True)
class NotificationAnswer:
    """What to answer YooKassa: an HTTP status and a short plain-text body."""

    status: int
    text: str


def yookassa_address_allowed(address: str | None) -> bool:
    """Whether `address` is in one of YooKassa's published notification ranges."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in YOOKASSA_NETWORKS)


def notification_payment_id(body: bytes) -> tuple[str, str] | None:
    """(event, payment id) of a notification's body; None when it is not one. The id
    is only a name to look up: nothing else in the body is read."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("type") != "notification":
        return None
    event, thing = data.get("event"), data.get("object")
    if not isinstance(event, str) or not isinstance(thing, dict):
        return None
    payment_id = thing.get("id")
    if not isinstance(payment_id, str) or not 0 < len(payment_id) <= PAYMENT_ID_MAX:
        return None
    if not all(c.isalnum() or c in "-_" for c in payment_id):  # as the adapter's path
        return None
    return event[:64], payment_id


async def yookassa_notification_handle(
    *,
    body: bytes,
    address: str | None,
    provider: PolledProvider,
    notify: Notify,
) -> NotificationAnswer:
    """Handle one notification from `address` (the client's, as `address_behind_proxy`
    reads it); see the module's docstring for the answers."""
    if settings.YOOKASSA_NOTIFY_IP_CHECK and not yookassa_address_allowed(address):
        logger.warning("YooKassa notification refused: {} is not YooKassa's address", address)
        return NotificationAnswer(403, "Forbidden")
    parsed = notification_payment_id(body)
    if parsed is None:
        logger.warning("YooKassa notification refused: the body is not a notification")
        return NotificationAnswer(400, "Bad Request: not a YooKassa notification")
    event, payment_id = parsed
    if not event.startswith("payment."):  # refund.succeeded, payout.*: not a payment's id
        logger.info("YooKassa notification {} ignored: not about a payment", event)
        return NotificationAnswer(200, "ignored")
    try:
        bill = await selectors.abill_by_charge_id(
            provider=ProviderName.YOOKASSA, charge_id=payment_id
        )
        if bill is None:
            # Not ours (another integration of the shop, or a made-up id): asking again
            # would not change that. A payment of ours whose id is not stored yet cannot
            # have been paid (its link is sent only after), and the poller has it anyway.
            logger.warning(
                "YooKassa notification {} about payment {}: no bill records it", event, payment_id
            )
            return NotificationAnswer(200, "unknown payment")
        if not bill.is_open and bill.status not in Bill.LATE_PAYABLE:
            return NotificationAnswer(200, "ok")  # paid, refunded or failed: settled here
        transition = await bill_check(provider=provider, bill=bill)
    except ProviderError as e:
        logger.warning(
            "YooKassa notification {} about payment {} not applied, YooKassa will send it "
            "again: {}",
            event,
            payment_id,
            e,
        )
        return NotificationAnswer(503, "not applied: send it again")
    except Exception:
        logger.exception(
            "YooKassa notification {} about payment {} not applied, YooKassa will send it again",
            event,
            payment_id,
        )
        return NotificationAnswer(500, "not applied: send it again")
    logger.info(
        "YooKassa notification {}: bill {} is {} (YooKassa: {})",
        event,
        bill.pk,
        transition.bill.status,
        transition.bill.provider_status,
    )
    if bill_news(before=bill, transition=transition):
        try:  # the bill is settled: a message that fails is only logged
            await notify(transition)
        except Exception:
            logger.exception("could not tell user about bill {}", bill.pk)
    return NotificationAnswer(200, "ok")
