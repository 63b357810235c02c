"""Fake QIWI P2P bills API (api.qiwi.com/partner/bill/v1) for pyqiwip2p's AioQiwiP2P."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from ._server import FakeServer, now_iso

STATUSES = {"WAITING", "PAID", "REJECTED", "EXPIRED"}
CURRENCIES = {"RUB", "KZT"}
_PATH = re.compile(r"/partner/bill/v1/bills/(?P<bill_id>[^/]+)(?P<reject>/reject)?")
_ERROR_CODES = {
    400: "validation.error",
    401: "auth.unauthorized",
    404: "api.invoice.not.found",
    429: "api.too.many.requests",
}


def make_secret_key(site_id: str = "test-site") -> str:
    """A P2P secret key that pyqiwip2p's validate_privkey accepts."""
    data = {
        "payin_merchant_site_uid": site_id,
        "user_id": "79000000000",
        "secret": secrets.token_hex(16),
    }
    return base64.b64encode(json.dumps({"version": "P2P", "data": data}).encode()).decode()


def qiwi_error(error_code: str, description: str) -> dict[str, Any]:
    return {
        "serviceName": "invoicing-api",
        "errorCode": error_code,
        "description": description,
        "userMessage": description,
        "dateTime": now_iso(),
        "traceId": secrets.token_hex(16),
    }


class _ApiError(Exception):
    def __init__(self, status: int, error_code: str, description: str) -> None:
        super().__init__(description)
        self.status, self.body = status, qiwi_error(error_code, description)


def _money(value: Any) -> str:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    except InvalidOperation:
        raise _ApiError(400, "validation.error", f"Invalid amount value: {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise _ApiError(400, "validation.error", f"Invalid amount value: {value!r}")
    return f"{amount:.2f}"


@dataclass
class QiwiRequest:
    method: str
    path: str
    bill_id: str | None
    headers: dict[str, str]
    json: Any | None
    failed: bool = False
    consumed: bool = field(default=False, repr=False)
    at: float = field(default_factory=time.monotonic, repr=False)  # when it came


@dataclass
class _Fault:
    status: int
    body: str | None
    json_body: dict[str, Any] | None
    delay: float
    headers: dict[str, str] | None = None


class FakeQiwi(FakeServer):
    def __init__(self, secret_key: str | None = None, site_id: str = "test-site") -> None:
        super().__init__()
        self.secret_key = secret_key or make_secret_key(site_id)
        self.site_id = site_id
        self.bills: dict[str, dict[str, Any]] = {}
        self.requests: list[QiwiRequest] = []
        self.unexpected: list[QiwiRequest] = []
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        # Requests being answered right now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._holding = False

    def hold(self) -> None:
        """Keep every answer (but the queued faults) back until release()."""
        self._holding = True

    def release(self) -> None:
        self._holding = False
        self._notify()

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        text = await request.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        match = _PATH.fullmatch(request.path)
        bill_id = match["bill_id"] if match else None
        req = QiwiRequest(
            request.method,
            request.path,
            bill_id,
            dict(request.headers),
            body,
            failed=True,
        )
        self.requests.append(req)
        if self._faults[request.method]:
            return await self._fault_response(self._faults[request.method].popleft())
        if self._holding:
            await self._wait_until(lambda: None if self._holding else True, 3600)
        try:
            if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
                raise _ApiError(401, "auth.unauthorized", "Invalid authentication data")
            bill = self._dispatch(req, match)
        except _ApiError as e:
            return web.json_response(e.body, status=e.status)
        req.failed = False
        self._notify()
        return web.json_response(copy.deepcopy(bill))

    def _dispatch(self, req: QiwiRequest, match: re.Match[str] | None) -> dict[str, Any]:
        route = (req.method, bool(match and match["reject"])) if match else None
        if route == ("PUT", False):
            return self._create(str(req.bill_id), req.json)
        if route == ("GET", False):
            return self._get(str(req.bill_id))
        if route == ("POST", True):
            bill = self._get(str(req.bill_id))
            if bill["status"]["value"] == "WAITING":
                self.set_status(bill["billId"], "REJECTED")
            return bill
        self.unexpected.append(req)
        raise _ApiError(404, "api.not.found", f"No route for {req.method} {req.path}")

    def _create(self, bill_id: str, body: Any) -> dict[str, Any]:
        amount = body.get("amount") if isinstance(body, dict) else None
        if not isinstance(amount, dict) or amount.get("currency") not in CURRENCIES:
            raise _ApiError(400, "validation.error", "amount.currency/amount.value are required")
        if not isinstance(body.get("expirationDateTime"), str):
            raise _ApiError(400, "validation.error", "expirationDateTime is required")
        wanted = {"currency": amount["currency"], "value": _money(amount.get("value"))}
        if bill_id in self.bills:
            if self.bills[bill_id]["amount"] != wanted:
                raise _ApiError(
                    400,
                    "api.invoice.already.exists",
                    "Invoice with this billId already exists",
                )
            return self.bills[bill_id]
        now = now_iso()
        self.bills[bill_id] = {
            "siteId": self.site_id,
            "billId": bill_id,
            "amount": wanted,
            "status": {"value": "WAITING", "changedDateTime": now},
            "customFields": body.get("customFields") or {},
            "comment": body.get("comment"),
            "creationDateTime": now,
            "expirationDateTime": body["expirationDateTime"],
            "payUrl": f"https://oplata.qiwi.com/form/?invoice_uid={uuid.uuid4()}",
        }
        if body.get("customer"):  # pyqiwip2p's Bill() crashes on "customer": {}
            self.bills[bill_id]["customer"] = body["customer"]
        return self.bills[bill_id]

    def _get(self, bill_id: str) -> dict[str, Any]:
        if bill_id not in self.bills:
            raise _ApiError(404, "api.invoice.not.found", "Invoice not found")
        return self.bills[bill_id]

    async def _fault_response(self, fault: _Fault) -> web.Response:
        await self._sleep(fault.delay)
        if fault.body is not None:
            kind = "text/html" if fault.body.lstrip().startswith("<") else "text/plain"
            return web.Response(
                status=fault.status, text=fault.body, content_type=kind, headers=fault.headers
            )
        if fault.json_body is not None:
            return web.json_response(fault.json_body, status=fault.status, headers=fault.headers)
        code = _ERROR_CODES.get(fault.status, "internal.error")
        return web.json_response(
            qiwi_error(code, f"Fake failure {fault.status}"),
            status=fault.status,
            headers=fault.headers,
        )

    # ---- helpers for tests ------------------------------------------------------
    def set_status(self, bill_id: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown QIWI status {status!r}; expected one of {sorted(STATUSES)}")
        self.bills[bill_id]["status"] = {"value": status, "changedDateTime": now_iso()}

    def set_amount(self, bill_id: str, value: str, currency: str | None = None) -> None:
        amount = self.bills[bill_id]["amount"]
        amount["value"] = value
        if currency is not None:
            amount["currency"] = currency

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        body: str | None = None,
        json_body: dict[str, Any] | None = None,
        delay: float = 0.0,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue `times` failures for HTTP `method` ("PUT"/"GET"/"POST"), with `headers`
        (say, Retry-After) on the answer."""
        fault = _Fault(status, body, json_body, delay, headers)
        self._faults[method.upper()].extend(copy.copy(fault) for _ in range(times))

    async def wait_request(
        self, method: str, bill_id: str | None = None, timeout: float = 5.0
    ) -> QiwiRequest:
        """Next unconsumed successful request of `method` (and `bill_id`); consumes it."""
        req = await self._wait_fresh(
            self.requests,
            lambda r: r.method == method.upper() and bill_id in (None, r.bill_id),
            timeout,
        )
        if req is None:
            seen = "\n".join(f"  {r.method} {r.path} failed={r.failed}" for r in self.requests)
            raise AssertionError(f"no {method} {bill_id or ''} within {timeout}s; seen:\n{seen}")
        req.consumed = True
        return req
