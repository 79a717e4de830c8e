"""HTTP for API calls: one boundary where transport failures become batchmig errors.

Every provider's calls leave through ``HttpTransport``, so failures are mapped the
same way for all of them: no connection → ``NotSentError`` (nothing was sent); reset,
timeout or a cut-off body after sending → ``UnknownOutcomeError``. aiohttp's own silent
re-send of idempotent requests on a broken keep-alive connection is switched off:
every request, and every repeat, goes through the pipeline's limiter, retry policy and
statistics. ``LAST_LOOK`` is the pipeline's hook, run right before a request's first
byte is written.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

import aiohttp
import aiohttp.connector

from batchmig.errors import NotSentError, TransientError, UnknownOutcomeError
from batchmig.plugin import HttpRequest, HttpResponse

MAX_BODY = 16 * 1024 * 1024
TIMEOUT = "Timeout"
"""The code of an unknown outcome that is a call left unanswered within the call timeout."""


class HttpTransport:
    """aiohttp over real sockets, with failures mapped to batchmig errors."""

    def __init__(self, timeout: float, ca_file: Path | None = None) -> None:
        """``ca_file`` adds a trusted CA (a TLS sandbox's ``ca.pem``) to the system's."""
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = True
        if ca_file is not None:
            self._ssl = ssl.create_default_context(cafile=str(ca_file))

    async def __aenter__(self) -> HttpTransport:
        connector = aiohttp.TCPConnector(limit=200, ttl_dns_cache=300, ssl=self._ssl)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=True,
                                              request_class=_LookingRequest)
        # aiohttp (3.10 on) re-sends a GET/PUT/DELETE once, silently, when a reused
        # connection breaks: outside the limiter, the retry policy and the counts — and
        # a PUT or DELETE may be a mutating call. There is no public switch; this is the
        # one aiohttp's own test client uses (older versions have no such re-send).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, request: HttpRequest) -> HttpResponse:
        assert self._session is not None, "use HttpTransport as an async context manager"
        sent = False
        try:
            async with self._session.request(
                request.method, request.url, headers=dict(request.headers), data=request.body or None,
                allow_redirects=False,
            ) as response:
                sent = True
                body = await _read_body(response)
                headers = {k.lower(): v for k, v in response.headers.items()}
                return HttpResponse(response.status, headers, body)
        except aiohttp.ClientConnectorError as exc:
            raise NotSentError("ConnectionFailed", f"cannot connect: {exc.os_error.strerror or exc}") from exc
        except TimeoutError as exc:
            raise UnknownOutcomeError(TIMEOUT, "no answer within the call timeout") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            moment = "while reading the answer" if sent else "after sending"
            raise UnknownOutcomeError("ConnectionLost", f"the connection broke {moment}: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise UnknownOutcomeError("ConnectionLost", f"HTTP failure: {type(exc).__name__}") from exc


LAST_LOOK: ContextVar[Callable[[], None] | None] = ContextVar("batchmig_last_look", default=None)
"""Called by the transport right before a request's bytes leave (``_LookingRequest``,
once the request has its connection). The pipeline sets it per call (``_before_write``): the
runner's fence may raise to keep the bytes in, so a runner frozen between admitting a
call and writing it (a stop, a long pause) does not send it on waking after its lease
may have passed to another; and the limiter learns when the call really left."""




class _LookingRequest(aiohttp.ClientRequest):
    """A request that takes its last look (``LAST_LOOK``) once it has a connection,
    right before its first byte is written.

    aiohttp's trace hooks could do the same, but tracing a request fires a dozen
    signals, each a coroutine, whether anyone listens or not: about 15 µs of CPU per
    call, a tenth of the raw client's cost (measured on loopback, see
    docs/benchmarks.md). The request runs in the calling task, so it sees the
    pipeline's context variable.
    """

    async def send(self, conn: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        look = LAST_LOOK.get()
        if look is not None:
            look()  # may raise (a closed fence): nothing has been written yet
        return await super().send(conn)


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole body (``content.read(n)`` returns only what is buffered), at most MAX_BODY."""
    length = response.content_length
    if length is not None and length <= MAX_BODY:  # the usual answer: read at once
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise TransientError("ResponseTooLarge", f"the answer is larger than {MAX_BODY // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


