"""Fake QIWI P2P bills API (api.qiwi.com/partner/bill/v1) for pyqiwip2p's AioQiwiP2P."""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from ._api import ApiError, ApiRequest, FakeApi
from ._server import now_iso

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


def _failure(status: int, error_code: str, description: str) -> ApiError:
    return ApiError(status, qiwi_error(error_code, description))


def _money(value: Any) -> str:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    except InvalidOperation:
        raise _failure(400, "validation.error", f"Invalid amount value: {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise _failure(400, "validation.error", f"Invalid amount value: {value!r}")
    return f"{amount:.2f}"


class QiwiRequest(ApiRequest):
    @property
    def bill_id(self) -> str | None:
        return self.object_id


class FakeQiwi(FakeApi):
    request_type = QiwiRequest

    def __init__(self, secret_key: str | None = None, site_id: str = "test-site") -> None:
        super().__init__()
        self.secret_key = secret_key or make_secret_key(site_id)
        self.site_id = site_id
        self.bills: dict[str, dict[str, Any]] = {}

    def _object_id(self, path: str) -> str | None:
        match = _PATH.fullmatch(path)
        return match["bill_id"] if match else None

    def _error_body(self, status: int, description: str) -> dict[str, Any]:
        return qiwi_error(_ERROR_CODES.get(status, "internal.error"), description)

    def _serve(self, req: ApiRequest) -> dict[str, Any]:
        if req.headers.get("Authorization") != f"Bearer {self.secret_key}":
            raise _failure(401, "auth.unauthorized", "Invalid authentication data")
        return self._dispatch(req, _PATH.fullmatch(req.path))

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
        raise _failure(404, "api.not.found", f"No route for {req.method} {req.path}")

    def _create(self, bill_id: str, body: Any) -> dict[str, Any]:
        amount = body.get("amount") if isinstance(body, dict) else None
        if not isinstance(amount, dict) or amount.get("currency") not in CURRENCIES:
            raise _failure(400, "validation.error", "amount.currency/amount.value are required")
        if not isinstance(body.get("expirationDateTime"), str):
            raise _failure(400, "validation.error", "expirationDateTime is required")
        wanted = {"currency": amount["currency"], "value": _money(amount.get("value"))}
        if bill_id in self.bills:
            if self.bills[bill_id]["amount"] != wanted:
                raise _failure(
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
            raise _failure(404, "api.invoice.not.found", "Invoice not found")
        return self.bills[bill_id]

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
