"""QIWI P2P through pyqiwip2p: the only module that imports it.

pyqiwip2p hard-codes `https://api.qiwi.com`; its httpx client gets a transport that
sends every request to QIWI_API_URL instead. Error answers never reach pyqiwip2p's
parser: on a non-JSON or error answer it writes a `QiwiCrash_*.txt` report into the
working directory, request headers (our secret key) included. A response hook checks
each answer first and raises a `ProviderError` that holds no header.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation

import httpx
from pyqiwip2p import AioQiwiP2P
from pyqiwip2p.p2p_types import Bill as QiwiBill

from backend.payments.providers.base import (
    ProviderAuthError,
    ProviderBill,
    ProviderError,
    ProviderNotFound,
)


class _RewriteTransport(httpx.AsyncBaseTransport):
    """Sends requests to `base_url`, keeping their path and query."""

    def __init__(self, base_url: str) -> None:
        self._base = httpx.URL(base_url)
        self._prefix = self._base.path.rstrip("/")
        self._inner = httpx.AsyncHTTPTransport(retries=1)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._base.scheme,
            host=self._base.host,
            port=self._base.port,
            path=self._prefix + request.url.path,
        )
        request.headers["Host"] = self._base.netloc.decode("ascii")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _check_response(response: httpx.Response) -> None:
    await response.aread()
    where = f"QIWI {response.request.method} {response.request.url.path}"
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if response.status_code == 401:
        raise ProviderAuthError(f"{where}: 401 Unauthorized: check QIWI_SECRET_KEY")
    if response.status_code == 404:
        raise ProviderNotFound(f"{where}: 404, no such bill")
    if not isinstance(body, dict):
        raise ProviderError(
            f"{where}: HTTP {response.status_code}, the answer is not a JSON object"
        )
    if response.status_code >= 400 or "errorCode" in body:
        code = body.get("errorCode", "")
        description = str(body.get("description", ""))[:200]
        raise ProviderError(f"{where}: HTTP {response.status_code} {code} {description}".strip())


class QiwiProvider:
    name = "qiwi"

    def __init__(self, *, secret_key: str, api_url: str, timeout: float = 15.0) -> None:
        try:
            self._client = AioQiwiP2P(auth_key=secret_key)
        except ValueError:
            raise ProviderAuthError(
                "QIWI_SECRET_KEY is not a QIWI P2P secret key (take it from p2p-admin)"
            ) from None
        self._client._client = httpx.AsyncClient(
            transport=_RewriteTransport(api_url),
            timeout=timeout,
            event_hooks={"response": [_check_response]},
        )

    async def create_bill(
        self, *, bill_id: str, amount: Decimal, currency: str, expires_at: datetime, comment: str
    ) -> ProviderBill:
        # pyqiwip2p formats the amount through float: exact for kopecks below 2**53.
        return await self._call(
            self._client.bill(
                bill_id=bill_id, amount=amount, expiration=expires_at, comment=comment
            )
        )

    async def get_bill(self, *, bill_id: str) -> ProviderBill:
        return await self._call(self._client.check(bill_id))

    async def reject_bill(self, *, bill_id: str) -> ProviderBill:
        return await self._call(self._client.reject(bill_id))

    async def close(self) -> None:
        await self._client._client.aclose()

    @staticmethod
    async def _call(request) -> ProviderBill:
        try:
            bill: QiwiBill = await request
            return ProviderBill(
                bill_id=str(bill.bill_id),
                status=str(bill.status),
                amount=Decimal(str(bill.amount)),
                currency=str(bill.currency),
                pay_url=str(bill.pay_url),
                raw=bill.json,
            )
        except ProviderError:
            raise
        except httpx.TimeoutException as e:
            raise ProviderError(f"QIWI did not answer in time ({type(e).__name__})") from None
        except httpx.HTTPError as e:
            raise ProviderError(f"QIWI is unreachable: {type(e).__name__}") from None
        except (KeyError, TypeError, InvalidOperation) as e:
            raise ProviderError(f"QIWI answered without a field we need: {e!r}") from None
