"""What the fake payment APIs (QIWI, YooKassa) share: every request recorded, answers
held back on demand, faults queued per HTTP method, waiting for a request."""

from __future__ import annotations

import copy
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import FakeServer


@dataclass
class ApiRequest:
    method: str
    path: str
    object_id: str | None  # the id in the path: QIWI's bill id, YooKassa's payment id
    headers: dict[str, str]
    json: Any | None
    failed: bool = False
    query: dict[str, str] = field(default_factory=dict)  # the URL's parameters
    consumed: bool = field(default=False, repr=False)
    at: float = field(default_factory=time.monotonic, repr=False)  # when it came


@dataclass
class Fault:
    status: int
    body: str | None
    json_body: dict[str, Any] | None
    delay: float
    headers: dict[str, str] | None = None


class ApiError(Exception):
    """An error answer: `status` and the provider's error object."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body


class FakeApi(FakeServer):
    """A subclass says which object a path is about (`_object_id`), answers a request
    that passed the queued faults (`_serve`: the JSON answer, or raises ApiError) and
    what its error answers look like (`_error_body`)."""

    request_type: type[ApiRequest] = ApiRequest

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ApiRequest] = []
        self.unexpected: list[ApiRequest] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        # Requests being answered right now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._holding = False

    def _object_id(self, path: str) -> str | None:
        raise NotImplementedError

    def _serve(self, req: ApiRequest) -> Any:
        raise NotImplementedError

    def _error_body(self, status: int, description: str) -> dict[str, Any]:
        raise NotImplementedError

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
        req = self.request_type(
            request.method,
            request.path,
            self._object_id(request.path),
            dict(request.headers),
            body,
            failed=True,
            query=dict(request.query),
        )
        self.requests.append(req)
        if self._faults[request.method]:
            return await self._fault_response(self._faults[request.method].popleft())
        if self._holding:
            await self._wait_until(lambda: None if self._holding else True, 3600)
        try:
            answer = self._serve(req)
        except ApiError as e:
            return web.json_response(e.body, status=e.status)
        req.failed = False
        self._notify()
        return web.json_response(copy.deepcopy(answer))

    async def _fault_response(self, fault: Fault) -> web.Response:
        await self._sleep(fault.delay)
        if fault.body is not None:
            kind = "text/html" if fault.body.lstrip().startswith("<") else "text/plain"
            return web.Response(
                status=fault.status, text=fault.body, content_type=kind, headers=fault.headers
            )
        body = fault.json_body
        if body is None:
            body = self._error_body(fault.status, f"Fake failure {fault.status}")
        return web.json_response(body, status=fault.status, headers=fault.headers)

    # ---- helpers for tests ------------------------------------------------------
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
        (say, Retry-After) on the answer. A `status` of 200 with `json_body` is a
        one-off answer of the test's own."""
        fault = Fault(status, body, json_body, delay, headers)
        self._faults[method.upper()].extend(copy.copy(fault) for _ in range(times))

    async def wait_request(
        self, method: str, object_id: str | None = None, timeout: float = 5.0
    ) -> ApiRequest:
        """Next unconsumed successful request of `method` (about `object_id`); consumes it."""
        req = await self._wait_fresh(
            self.requests,
            lambda r: r.method == method.upper() and object_id in (None, r.object_id),
            timeout,
        )
        if req is None:
            seen = "\n".join(f"  {r.method} {r.path} failed={r.failed}" for r in self.requests)
            raise AssertionError(f"no {method} {object_id or ''} within {timeout}s; seen:\n{seen}")
        req.consumed = True
        return req
