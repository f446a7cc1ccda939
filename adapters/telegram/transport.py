"""``AiohttpRequest``: PTB's Bot API requests over aiohttp instead of httpx.

PTB's own ``HTTPXRequest`` slows down as requests overlap: httpcore re-examines every
pooled connection (a syscall each) for every queued request. Measured here against a
loopback server: about 900 requests/s one at a time, falling to about 450 with 8 in
flight and 210 with 32, where aiohttp keeps 2,000-3,500. A busy bot has hundreds of
replies in flight, so the adapter hands PTB this :class:`~telegram.request.BaseRequest`
instead (PTB's documented extension point; aiohttp is already the web server's).

The proxy the environment names (``HTTPS_PROXY`` and friends, as httpx honours them)
is looked up once per host (:mod:`bot.outbound_proxy`) rather than by aiohttp's
``trust_env``, which costs two thread hand-offs per request (the proxy variables and
``~/.netrc``, read afresh each time): a tenth of the bot's CPU per message.

Errors map as PTB's own implementation maps them: timeouts to ``TimedOut``, other
transport failures to ``NetworkError``; Telegram's answers are PTB's to interpret.
"""

from __future__ import annotations

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from bot.outbound_proxy import OutboundProxy

#: PTB's "not passed" marker for timeouts (its class lives in a private module).
_DefaultValue = type(BaseRequest.DEFAULT_NONE)


def _value(given: object, default: float | None) -> float | None:
    if isinstance(given, _DefaultValue):
        return default
    if given is not None and not isinstance(given, int | float):
        raise TypeError(f"a timeout is a number of seconds or None, not {given!r}")
    return given


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a bounded connection pool.

    ``write_timeout`` is accepted for PTB's interface but not enforced separately
    (aiohttp has no such timeout); the bodies sent here are small.
    """

    __slots__ = (
        "_connect_timeout",
        "_pool_size",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_session",
    )

    def __init__(
        self,
        *,
        connection_pool_size: int = 32,
        read_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ):
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxy = OutboundProxy()

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("this AiohttpRequest is not initialized")
        connect = _value(connect_timeout, self._connect_timeout)
        pool = _value(pool_timeout, self._pool_timeout)
        timeout = aiohttp.ClientTimeout(
            # aiohttp's "connect" includes the wait for a free pooled connection.
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=_value(read_timeout, self._read_timeout),
        )
        body, headers = _body(request_data)
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                proxy=self._proxy.for_url(url),
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # Not the error's text: it may quote the URL, and the URL holds the token.
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc


_JSON = {"Content-Type": "application/json"}


def _body(
    request_data: RequestData | None,
) -> tuple[aiohttp.FormData | bytes | None, dict[str, str] | None]:
    """The body and its headers: the parameters as one JSON object of the strings PTB
    makes of them (nested values are JSON strings, as in a form), multipart when there
    are files. The Bot API reads a JSON body's fields as it reads a form's; encoding a
    form costs ten times as much (``urlencode`` quotes a reply's text byte by byte)."""
    if request_data is None:
        return None, None
    files = request_data.multipart_data
    if not files:
        return request_data.json_payload, _JSON
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime) in files.items():
        form.add_field(name, content, filename=filename, content_type=mime)
    return form, None
