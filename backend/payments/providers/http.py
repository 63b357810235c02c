"""The HTTP of the adapters that talk to a provider's API themselves (QIWI, YooKassa):
one aiohttp session per adapter, its connections kept alive across bills and poll
rounds, and the provider's Retry-After read the same way.

aiohttp comes with aiogram. Nothing here logs or puts a request header into an error:
the headers carry the provider's key.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import certifi
import yarl
from multidict import CIMultiDictProxy

from backend.payments.providers.base import ProviderError

KEEPALIVE_SECONDS = 75.0  # an idle connection is kept this long (rounds are 60 s apart)


class HttpPool:
    """Up to `max_connections` connections to `api_url`; `timeout` bounds connecting and
    each wait for data. `provider` names the provider in error messages."""

    def __init__(
        self,
        api_url: str,
        *,
        provider: str,
        timeout: float,
        max_connections: int,
        auto_decompress: bool = True,
    ) -> None:
        self.base = api_url.rstrip("/")
        self.provider = provider
        self._tls = yarl.URL(api_url).scheme == "https"
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._max_connections = max_connections
        self._auto_decompress = auto_decompress
        self._session: aiohttp.ClientSession | None = None

    def _session_open(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp binds it to the running loop."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_SECONDS,
                # certifi's roots, as httpx has them
                ssl=ssl.create_default_context(cafile=certifi.where()) if self._tls else False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=self._auto_decompress,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(
        self,
        method: str,
        path_qs: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        where: str,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """(status, headers, body) of `method` on the API's `path_qs` (already encoded).
        A timeout or a connection failure raises ProviderError, naming only `where`."""
        try:
            async with self._session_open().request(
                method,
                yarl.URL(self.base + path_qs, encoded=True),
                headers=headers,
                data=body,
                timeout=self._timeout,
                allow_redirects=False,
            ) as answer:
                return answer.status, answer.headers, await answer.read()
        except TimeoutError as e:  # aiohttp's connect and read timeouts are TimeoutErrors
            raise ProviderError(f"{where}: no answer in time ({type(e).__name__})") from None
        except aiohttp.ClientError as e:
            raise ProviderError(
                f"{where}: {self.provider} is unreachable ({type(e).__name__})"
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
