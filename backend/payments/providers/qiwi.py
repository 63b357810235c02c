"""QIWI P2P through pyqiwip2p: the only module that imports it.

pyqiwip2p builds every request (URL, key, body) and parses every answer; it sends them
through the httpx client it keeps in `_client`, and that client is ours (`_QiwiHttp`):
it sends each request to QIWI_API_URL instead of the hard-coded `https://api.qiwi.com`,
over aiohttp's connection pool. Error answers never reach pyqiwip2p's parser: on a
non-JSON or error answer it writes a `QiwiCrash_*.txt` report into the working
directory, request headers (our secret key) included. Each answer is checked first, and
an error raises a `ProviderError` that holds no header; a 429 raises
`ProviderRateLimited` with the Retry-After.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import yarl
from pyqiwip2p import AioQiwiP2P
from pyqiwip2p.p2p_types import Bill as QiwiBill

from backend.payments.providers.base import (
    ProviderAuthError,
    ProviderBill,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    Quote,
)
from backend.payments.providers.http import HttpPool
from backend.payments.providers.http import retry_after as parse_retry_after
from backend.payments.vocabulary import BillStatus, ProviderName

# QIWI's words for a bill (its `status.value`), in the shared vocabulary.
STATUSES = {
    "WAITING": BillStatus.WAITING,
    "PAID": BillStatus.PAID,
    "REJECTED": BillStatus.REJECTED,
    "EXPIRED": BillStatus.EXPIRED,
}


class _QiwiHttp:
    """What pyqiwip2p asks of its `httpx.AsyncClient` (`get`, `put`, `post`, `aclose`),
    over one aiohttp session (`HttpPool`): up to `max_connections` connections, kept
    alive across bills and poll rounds.

    httpx's client costs about 0.3 ms of CPU a request besides the HTTP itself (URLs
    parsed twice, headers merged, cookies, hooks), and its httpcore pool another 0.5 ms
    (it walks every connection, with two system calls for each idle one, whenever a
    request comes or a response is closed): a poll round was CPU-bound. aiohttp, which
    aiogram brings, does the HTTP in under 0.1 ms. The answer is handed back as the
    `httpx.Response` pyqiwip2p's parser expects, once `_check_answer` has passed it.
    `timeout` bounds connecting and each wait for data, as httpx's did.
    """

    def __init__(self, api_url: str, *, timeout: float, max_connections: int) -> None:
        # httpx.Response decodes by Content-Encoding itself
        self._pool = HttpPool(
            api_url,
            provider="QIWI",
            timeout=timeout,
            max_connections=max_connections,
            auto_decompress=False,
        )

    async def get(self, url: str, *, headers: dict[str, str]) -> httpx.Response:
        return await self._send("GET", url, headers=headers)

    async def put(self, url: str, *, json: Any, headers: dict[str, str]) -> httpx.Response:
        return await self._send("PUT", url, headers=headers, body=_json_bytes(json))

    async def post(self, url: str, *, headers: dict[str, str]) -> httpx.Response:
        return await self._send("POST", url, headers=headers)

    async def aclose(self) -> None:
        await self._pool.close()

    async def _send(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None = None
    ) -> httpx.Response:
        target = yarl.URL(url)  # pyqiwip2p's, on api.qiwi.com
        where = f"QIWI {method} {target.path}"
        status, answer_headers, content = await self._pool.send(
            method, target.raw_path_qs, headers=headers, body=body, where=where
        )
        response = httpx.Response(status, headers=list(answer_headers.items()), content=content)
        _check_answer(response, where)
        return response


def _json_bytes(data: Any) -> bytes:
    """A JSON body as httpx would encode it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _check_answer(response: httpx.Response, where: str) -> None:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if response.status_code == 401:
        raise ProviderAuthError(f"{where}: 401 Unauthorized: check QIWI_SECRET_KEY")
    if response.status_code == 404:
        raise ProviderNotFound(f"{where}: 404, no such bill")
    if response.status_code == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise ProviderRateLimited(
            f"{where}: 429 Too Many Requests (Retry-After: {retry_after})",
            retry_after=retry_after,
        )
    if not isinstance(body, dict):
        raise ProviderError(
            f"{where}: HTTP {response.status_code}, the answer is not a JSON object"
        )
    if response.status_code >= 400 or "errorCode" in body:
        code = body.get("errorCode", "")
        description = str(body.get("description", ""))[:200]
        raise ProviderError(f"{where}: HTTP {response.status_code} {code} {description}".strip())


class QiwiProvider:
    """A `PolledProvider`: the poller and the check button ask it about bills."""

    name = ProviderName.QIWI
    needs_receipt_contact = False

    def __init__(
        self, *, secret_key: str, api_url: str, timeout: float = 15.0, max_connections: int = 16
    ) -> None:
        try:
            self._client = AioQiwiP2P(auth_key=secret_key)
        except ValueError:
            raise ProviderAuthError(
                "QIWI_SECRET_KEY is not a QIWI P2P secret key (take it from p2p-admin)"
            ) from None
        self._client._client = _QiwiHttp(api_url, timeout=timeout, max_connections=max_connections)

    def quote(self, *, amount: Decimal) -> Quote:
        return Quote.rubles(amount)

    async def create_bill(
        self,
        *,
        bill_id: str,
        amount: Decimal,
        currency: str,
        expires_at: datetime,
        comment: str,
        telegram_id: int = 0,  # QIWI does not need to know who pays
        receipt_contact: str = "",  # nor where a receipt would go: it sends none
    ) -> ProviderBill:
        # pyqiwip2p formats the amount through float: exact for kopecks below 2**53.
        return await self._call(
            self._client.bill(
                bill_id=bill_id, amount=amount, expiration=expires_at, comment=comment
            )
        )

    async def get_bill(self, *, bill_id: str, charge_id: str = "") -> ProviderBill:
        return await self._call(self._client.check(bill_id))

    async def reject_bill(self, *, bill_id: str, charge_id: str = "") -> ProviderBill:
        return await self._call(self._client.reject(bill_id))

    async def close(self) -> None:
        await self._client._client.aclose()

    @staticmethod
    async def _call(request) -> ProviderBill:
        try:
            bill: QiwiBill = await request
            status = str(bill.status)
            return ProviderBill(
                bill_id=str(bill.bill_id),
                status=STATUSES.get(status),
                provider_status=status,
                amount=Decimal(str(bill.amount)),
                currency=str(bill.currency),
                pay_url=str(bill.pay_url),
                raw=bill.json,
            )
        except ProviderError:
            raise
        except (KeyError, TypeError, InvalidOperation) as e:
            raise ProviderError(f"QIWI answered without a field we need: {e!r}") from None
