"""Shared lifecycle for the fake HTTP servers: ephemeral port, waiting helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Protocol, Self, TypeVar

from aiohttp import web

T = TypeVar("T")


class Recorded(Protocol):
    failed: bool
    consumed: bool


R = TypeVar("R", bound=Recorded)
MSK = timezone(timedelta(hours=3))


def now_iso() -> str:
    """QIWI-style timestamp: millis and +03:00 offset."""
    return datetime.now(MSK).isoformat(timespec="milliseconds")


class FakeServer:
    """aiohttp app on 127.0.0.1:<ephemeral port>; subclasses provide the app."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._stopping.set()
        self._notify()
        runner, self._runner, self._port = self._runner, None, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _notify(self) -> None:
        """Wake everything blocked in _wait_until (safe from sync code)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_until(self, check: Callable[[], T | None], timeout: float) -> T | None:
        """Re-run `check` on every change until it returns non-None or time is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            remaining = deadline - loop.time()
            if result is not None or remaining <= 0 or self._stopping.is_set():
                return result
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def _sleep(self, delay: float) -> None:
        """Sleep that ends early when the server stops (so shutdown stays fast)."""
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _wait_fresh(
        self, items: list[R], match: Callable[[R], bool], timeout: float
    ) -> R | None:
        """First successful, not yet consumed item matching `match` (waits for it)."""

        def find() -> R | None:
            fresh = (i for i in items if not i.failed and not i.consumed)
            return next((i for i in fresh if match(i)), None)

        return await self._wait_until(find, timeout)
