"""HTTP for API calls: a lean HTTP/1.1 client, and the one boundary where transport
failures become batchmig errors.

Every provider's calls leave through ``HttpTransport``, so failures are mapped the
same way for all of them:

* no connection (refused, unreachable, DNS, TLS handshake, connect timeout, no free
  connection within the call timeout) → ``NotSentError``: nothing was written;
* once a byte was written: a reset, an early close or a cut-off body →
  ``UnknownOutcomeError("ConnectionLost")``, no answer within the call timeout →
  ``UnknownOutcomeError("Timeout")``, an answer that is not HTTP or cannot be
  decoded → ``UnknownOutcomeError("MalformedAnswer")``; an answer over ``MAX_BODY``
  → ``TransientError("ResponseTooLarge")``.

Nothing is ever re-sent here: every request, and every repeat, goes through the
pipeline's limiter, retry policy and statistics. ``LAST_LOOK`` is the pipeline's
hook, run once the request has its connection, right before its first byte is written.

Why not aiohttp (which still serves the web UI, notifications and the emulators): its
client spent about 190 µs of CPU per call in our use — a session request builds a URL
object, header multidicts, request, response, payload, stream and timer objects, and
runs a dozen coroutines — where this client, an asyncio protocol over httptools'
C parser (llhttp), spends a fraction of that (docs/benchmarks.md). It does only what
API calls need: keep-alive pools per (scheme, host, port), TLS with the host name
checked, Content-Length and chunked answers, gzip and deflate, ``Connection: close``,
no redirects, no proxies, no cookies.

A pooled connection is taken again only if it is still good right before the write:
not closed by the server (a FIN or a TLS alert it already sent is seen by polling the
socket without waiting, even before the event loop delivered it), and idle
for less than ``IDLE_TTL`` — shorter than servers keep idle connections, so the server
does not close one just as a request is written on it. A request that finds no good
connection opens a new one; an unknown outcome never comes from a stale connection.
At ``POOL_LIMIT`` it waits for one of its origin's own instead, unless taking another
origin's idle connection is fair (``_make_room``).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import select
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import cast
from urllib.parse import quote

import anyio
import httptools

from batchmig import __version__
from batchmig.errors import NotSentError, PermanentError, ProviderError, TransientError, UnknownOutcomeError
from batchmig.plugin import HttpRequest, HttpResponse

MAX_BODY = 16 * 1024 * 1024
"""The largest answer read (after decompression); a larger one is ``ResponseTooLarge``."""
TIMEOUT = "Timeout"
"""The code of an unknown outcome that is a call left unanswered within the call timeout."""
CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection (TCP and TLS), at most; the call timeout if shorter."""
POOL_LIMIT = 200
"""Connections open at once, all hosts together; a request beyond waits for one (unsent)."""
IDLE_TTL = 15.0
"""Seconds a kept-alive connection may sit idle and still be used (servers wait 60 s or more)."""
TARGETS_KEPT = 4096
"""URLs whose parse is remembered (all forgotten at once when full: URLs with a query are many)."""
STEAL_AFTER = 1.0
"""Seconds another origin's connection must have sat idle before a request at ``POOL_LIMIT``
closes it to open one of its own (unless the request's origin has fewer connections)."""
SHAPES_KEPT = 64
"""Sets of request header names whose head layout an origin remembers (see ``_Origin.shape``)."""

LAST_LOOK: ContextVar[Callable[[], None] | None] = ContextVar("batchmig_last_look", default=None)
"""Called by the transport right before a request's bytes leave, once the request has
its connection. The pipeline sets it per call (``_before_write``): the runner's fence
may raise to keep the bytes in, so a runner frozen between admitting a call and
writing it (a stop, a long pause) does not send it on waking after its lease may have
passed to another; and the limiter learns when the call really left."""

_TARGET = re.compile(r"[!-~]*").fullmatch  # printable ASCII without spaces: a request target as it is
_KEPT_OUT = frozenset(("host", "content-length", "transfer-encoding", "connection"))
"""Request headers the transport writes itself (a provider's own are left out)."""
_WITH_BODY = frozenset(("POST", "PUT", "PATCH"))


class HttpTransport:
    """API calls over real sockets, with failures mapped to batchmig errors.

    ``timeout`` bounds a whole call: waiting for a connection, connecting (at most
    ``CONNECT_TIMEOUT``), writing and reading the answer.
    """

    def __init__(self, timeout: float, ca_file: Path | None = None) -> None:
        """``ca_file`` adds a trusted CA (a TLS sandbox's ``ca.pem``) to the system's."""
        self._timeout = timeout
        self._ca_file = ca_file
        self._ssl: ssl.SSLContext | None = None  # made for the first https origin (loading the CAs costs)
        self._origins: dict[str, _Origin] = {}
        self._targets: dict[str, tuple[_Origin, str]] = {}  # URL → its origin and request target
        self._open = 0  # connections open or opening
        self._waiting = 0  # requests waiting for a connection, all origins together
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._deadlines: dict[_Connection | asyncio.Future[None], float] = {}
        """Each call's deadline, under what it waits on: the connection writing it and reading its
        answer, or (before it has one) its place in a queue for a connection."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # when ``_timer`` fires: never later than the earliest deadline

    async def __aenter__(self) -> HttpTransport:
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True  # a call still answering closes its connection instead of pooling it
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        for origin in self._origins.values():
            while origin.idle:
                origin.idle.pop().close()
        self._origins.clear()
        self._targets.clear()

    async def send(self, request: HttpRequest) -> HttpResponse:
        loop = self._loop
        assert loop is not None, "use HttpTransport as an async context manager"
        deadline = loop.time() + self._timeout
        origin, target = self._origin(request.url)
        head = _head(request, origin, target)
        conn = await self._connection(origin, deadline)
        look = LAST_LOOK.get()
        if look is not None:
            try:
                look()  # may raise (a closed fence, a missed slot): nothing has been written
            except BaseException:
                self._pool(conn)
                raise
        waiter = conn.start(loop, request.method == "HEAD")
        self._expire_at(conn, deadline)
        try:
            conn.write(head, request.body)
            response = await waiter
        except BaseException:
            conn.close()  # half a request or half an answer: the connection is done
            raise
        finally:
            self._deadlines.pop(conn, None)
        if conn.keep_alive:
            self._pool(conn)
        else:
            conn.close()
        return response

    def _origin(self, url: str) -> tuple[_Origin, str]:
        """The origin a URL names (kept per scheme://authority), and its request target;
        remembered per URL, as most calls of a provider go to the same one."""
        known = self._targets.get(url)
        if known is not None:
            return known
        if len(self._targets) >= TARGETS_KEPT:
            self._targets.clear()
        scheme, _, rest = url.partition("://")
        authority, slash, path = rest.partition("/")
        cut = min((i for i in (authority.find("?"), authority.find("#")) if i >= 0), default=-1)
        if cut >= 0:  # "https://host?query": no path
            authority, path, slash = authority[:cut], authority[cut:] + slash + path, ""
        target = (slash or "/") + path
        hash_at = target.find("#")
        if hash_at >= 0:
            target = target[:hash_at]
        if not _TARGET(target):
            target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")
        key = f"{scheme}://{authority}"
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(scheme, authority, self._tls if scheme == "https" else None)
        self._targets[url] = origin, target
        return origin, target

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            if self._ca_file is not None:
                try:
                    context.load_verify_locations(cafile=str(self._ca_file))
                except (OSError, ssl.SSLError) as exc:
                    raise PermanentError("TlsSetup", f"cannot read the CA file {self._ca_file}: "
                                         f"{getattr(exc, 'strerror', None) or exc}") from exc
            self._ssl = context
        return self._ssl

    async def _connection(self, origin: _Origin, deadline: float) -> _Connection:
        """A good pooled connection of the origin, or a new one; ``NotSentError`` if none."""
        assert self._loop is not None
        while True:
            now = self._loop.time()
            idle = origin.idle
            while idle:
                conn = idle.pop()
                if conn.reusable(now):
                    return conn
                conn.close()
            if self._open < POOL_LIMIT or self._make_room(origin, now):
                return await self._connect(origin, deadline)
            waiter = self._loop.create_future()
            origin.waiters.append(waiter)
            self._waiting += 1
            self._expire_at(waiter, deadline)  # not a cancel scope: most calls of a burst wait here
            try:
                await waiter  # woken: ``_wake`` took it off the queue
            except BaseException as exc:
                if waiter in origin.waiters:
                    origin.waiters.remove(waiter)
                    self._waiting -= 1
                elif not waiter.cancelled() and waiter.exception() is None:  # woken, then cancelled: pass it on
                    self._wake(origin)
                if isinstance(exc, TimeoutError):
                    raise NotSentError("ConnectionFailed", f"all {POOL_LIMIT} connections stayed busy for the "
                                       "whole call timeout") from None
                raise
            finally:
                self._deadlines.pop(waiter, None)

    def _expire_at(self, what: _Connection | asyncio.Future[None], deadline: float) -> None:
        """Fail ``what`` at ``deadline`` unless it is taken off ``_deadlines`` before.

        One timer for all calls instead of one per call and stage (a loop timer is made,
        started, stopped and closed each time): the calls' deadlines are their start plus
        the same timeout, so the timer, set for the earliest, rarely moves."""
        self._deadlines[what] = deadline
        if deadline < self._timer_at:
            assert self._loop is not None
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = self._loop.call_at(deadline, self._expire_due), deadline

    def _expire_due(self) -> None:
        """The timer: every call past its deadline fails, and the timer is set for the next one."""
        assert self._loop is not None
        now = max(self._loop.time(), self._timer_at)  # the loop's timers may fire a hair early
        self._timer, self._timer_at = None, math.inf
        due = [what for what, deadline in self._deadlines.items() if deadline <= now]
        for what in due:
            del self._deadlines[what]
            if isinstance(what, _Connection):
                what.time_out()
            elif not what.done():
                what.set_exception(TimeoutError())
        if self._deadlines:
            earliest = min(self._deadlines.values())
            self._timer, self._timer_at = self._loop.call_at(earliest, self._expire_due), earliest

    def _make_room(self, origin: _Origin, now: float) -> bool:
        """At the limit, close another origin's oldest idle connection if that is fair:
        the request's origin has none open, or fewer than the other one has, or the other
        one's connection has sat unused for ``STEAL_AFTER``. Otherwise the request waits for
        one of its origin's own: under a burst to several origins, closing a connection
        that was only between two requests made its origin open a new one in turn (the
        pool was re-made every third call)."""
        victim = None
        for other in self._origins.values():
            if other is not origin and other.idle and (victim is None or other.open > victim.open):
                victim = other
        if victim is None:
            return False
        if origin.open == 0 or origin.open + 1 < victim.open or now - victim.idle[0].idle_since >= STEAL_AFTER:
            victim.idle.pop(0).close()
            return True
        return False

    async def _connect(self, origin: _Origin, deadline: float) -> _Connection:
        assert self._loop is not None
        conn = _Connection(origin, self._closed)
        self._open += 1
        origin.open += 1
        try:
            with anyio.fail_after(max(0.0, min(CONNECT_TIMEOUT, deadline - self._loop.time()))):
                await self._loop.create_connection(
                    lambda: conn, origin.host, origin.port, ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl is not None else None,
                )
        except TimeoutError:
            conn.close()
            raise NotSentError("ConnectionFailed", f"cannot connect to {origin.authority}: no answer within "
                               f"{min(CONNECT_TIMEOUT, self._timeout):g} s") from None
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise NotSentError("ConnectionFailed", f"cannot connect: {exc.strerror or exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _pool(self, conn: _Connection) -> None:
        """Back to its origin's pool, for the next request (``reusable`` checks it then)."""
        assert self._loop is not None
        if self._closing:
            conn.close()
            return
        conn.idle_since = self._loop.time()
        conn.origin.idle.append(conn)
        self._wake(conn.origin)

    def _closed(self, conn: _Connection) -> None:
        """A connection of this transport is closed (by either side): its slot is free."""
        self._open -= 1
        origin = conn.origin
        origin.open -= 1
        if conn in origin.idle:
            origin.idle.remove(conn)
        self._wake(None)

    def _wake(self, first: _Origin | None) -> None:
        """Wake one waiting request: of an origin without any connection first (it may
        take the idle one's place), else of ``first`` (whose connection was just pooled),
        else of any origin (it may take the free slot or make room)."""
        if not self._waiting:
            return
        origins = self._origins.values()
        for origin in origins:
            if not origin.open and self._wake_one(origin):
                return
        if first is not None and self._wake_one(first):
            return
        for origin in origins:
            if self._wake_one(origin):
                return

    def _wake_one(self, origin: _Origin) -> bool:
        waiters = origin.waiters
        while waiters:
            waiter = waiters.popleft()
            self._waiting -= 1
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False


class _Origin:
    """One (scheme, host, port): its connections' pool and the headers every request to it has."""

    def __init__(self, scheme: str, authority: str, tls: Callable[[], ssl.SSLContext] | None) -> None:
        if scheme not in ("http", "https"):
            raise PermanentError("UnsupportedUrl", f"batchmig speaks http and https, not {scheme!r}")
        self.authority = authority.rpartition("@")[2]
        host, port = self.authority, ""
        if host.startswith("["):  # an IPv6 literal
            end = host.find("]")
            host, port = host[1:end], host[end + 2:]
        elif ":" in host:
            host, _, port = host.partition(":")
        default = 443 if scheme == "https" else 80
        self.host = host
        self.port = int(port) if port else default
        self.ssl = tls() if tls is not None else None
        shown = f"[{host}]" if ":" in host else host
        if self.port != default:
            shown = f"{shown}:{self.port}"
        self.defaults = {"host": f"Host: {shown}\r\n", "accept-encoding": "Accept-Encoding: gzip, deflate\r\n",
                         "user-agent": f"User-Agent: batchmig/{__version__}\r\n"}
        self.shapes: dict[tuple[str, ...], tuple[tuple[str, ...], str, int]] = {}
        self.idle: list[_Connection] = []  # most recently used last
        self.open = 0  # this origin's connections open or opening
        self.waiters: deque[asyncio.Future[None]] = deque()  # its requests waiting for a connection

    def shape(self, names: tuple[str, ...]) -> tuple[tuple[str, ...], str, int]:
        """For a request with these header names (a provider sends the same ones on every
        call of an action): the names written as given, the default header lines written
        after them, and the head's line count without ``Content-Length``."""
        if len(self.shapes) >= SHAPES_KEPT:
            self.shapes.clear()
        lowered = [name.lower() for name in names]
        sent = tuple(name for name, lower in zip(names, lowered, strict=True)
                     if lower not in _KEPT_OUT or lower == "host")
        defaults = "".join(line for name, line in self.defaults.items() if name not in lowered)
        shape = self.shapes[names] = sent, defaults, len(sent) + defaults.count("\n") + 2
        return shape


def _head(request: HttpRequest, origin: _Origin, target: str) -> bytes:
    """The request line and headers; a provider's header with a line break is refused."""
    headers = request.headers
    names = tuple(headers)
    shape = origin.shapes.get(names) or origin.shape(names)
    sent, defaults, lines = shape
    body, method = request.body, request.method
    length = f"Content-Length: {len(body)}\r\n" if body or method in _WITH_BODY else ""
    head = "".join([f"{method} {target} HTTP/1.1\r\n", *[f"{name}: {headers[name]}\r\n" for name in sent],
                    defaults, length, "\r\n"])
    lines += 1 if length else 0
    if head.count("\n") != lines or head.count("\r") != lines:
        raise PermanentError("InvalidRequest", "a request header carries a line break; the request was not sent")
    return head.encode("utf-8")


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection, answering one request at a time."""

    def __init__(self, origin: _Origin, on_closed: Callable[[_Connection], None]) -> None:
        self.origin = origin
        self._on_closed: Callable[[_Connection], None] | None = on_closed
        self._transport: asyncio.Transport | None = None
        self._dup: socket.socket | None = None
        self._poll: select.poll | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._head_request = False
        self.keep_alive = False
        self.idle_since = 0.0
        self._received = False  # a byte of the answer arrived
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._decoder: _Decoder | None = None
        self._headers_done = False
        self._until_eof = False

    # -- the transport's side

    def reusable(self, now: float) -> bool:
        """Still open, not idle too long, and nothing (a FIN, a TLS alert) waiting on it."""
        transport, dup, poll = self._transport, self._dup, self._poll
        if transport is None or transport.is_closing() or dup is None or now - self.idle_since > IDLE_TTL:
            return False
        try:  # anything to read is an end of file, an alert or bytes nobody asked for
            return not (poll.poll(0) if poll is not None else select.select([dup], (), (), 0)[0])
        except (OSError, ValueError):
            return False

    def start(self, loop: asyncio.AbstractEventLoop, head_request: bool) -> asyncio.Future[HttpResponse]:
        """A new request on this connection: the future of its answer."""
        self._head_request = head_request
        self.keep_alive = False
        self._received = False
        self._waiter = loop.create_future()
        return self._waiter

    def write(self, head: bytes, body: bytes) -> None:
        assert self._transport is not None
        self._transport.write(head + body if body else head)

    def time_out(self) -> None:
        self._fail(UnknownOutcomeError(TIMEOUT, "no answer within the call timeout"))
        self.close()

    def close(self) -> None:
        self.keep_alive = False
        if self._transport is not None:
            self._transport.abort()
        self._closed()

    def _closed(self) -> None:
        if self._dup is not None:
            self._dup.close()
            self._dup = self._poll = None
        if self._on_closed is not None:
            on_closed, self._on_closed = self._on_closed, None
            on_closed(self)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        raw = transport.get_extra_info("socket")
        try:  # a duplicate of the descriptor, for ``reusable`` to poll; without one, no reuse
            self._dup = socket.socket(raw.family, raw.type, raw.proto, os.dup(raw.fileno())) if raw else None
        except OSError:
            self._dup = None
        if self._dup is not None and hasattr(select, "poll"):  # else (Windows) ``select``, slower
            self._poll = select.poll()
            self._poll.register(self._dup, select.POLLIN)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # bytes nobody asked for: the connection is unusable
            self.keep_alive = False
            self.close()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, ProviderError) else _malformed(exc))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(_malformed(exc))
            self.close()

    def eof_received(self) -> bool:
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        self._transport = None
        self._closed()

    def _end(self) -> None:
        """The server closed: an answer read until the end is complete; any other is cut off."""
        self.keep_alive = False
        if self._until_eof and self._headers_done:
            try:
                self._flush()
                self._finish()
            except ProviderError as exc:
                self._fail(exc)
        moment = "while reading the answer" if self._received else "after sending"
        self._fail(UnknownOutcomeError("ConnectionLost", f"the connection broke {moment}: the server closed it"))

    def _fail(self, error: ProviderError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    # -- httptools' callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():  # a second answer to one request
            raise _malformed(ValueError("an answer nobody asked for"))
        self._status = 0
        self._headers = {}
        self._body = []
        self._size = 0
        self._decoder = None
        self._headers_done = False
        self._until_eof = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("utf-8", "surrogateescape")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        headers = self._headers
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise _too_large()
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", ""):
            self._decoder = _Decoder(encoding)
        self._headers_done = True
        self._until_eof = (length is None and "chunked" not in headers.get("transfer-encoding", "")
                           and self._status >= 200 and self._status not in (204, 304))
        if self._head_request:  # no body follows, whatever the headers say; the parser cannot know
            self._until_eof = False
            self._finish()
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            body = self._decoder.decompress(body, MAX_BODY - self._size)
        self._size += len(body)
        if self._size > MAX_BODY:
            raise _too_large()
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            return
        self._flush()
        self.keep_alive = self._parser.should_keep_alive() and not self._head_request
        self._finish()

    def _flush(self) -> None:
        if self._decoder is not None:
            self._body.append(self._decoder.flush(MAX_BODY - self._size))

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result(HttpResponse(self._status, self._headers, body))


class _Decoder:
    """gzip or deflate (with or without the zlib wrapper), bounded by what may still be read."""

    def __init__(self, encoding: str) -> None:
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise UnknownOutcomeError("MalformedAnswer", f"the answer is encoded as {encoding!r}, which batchmig "
                                      "did not ask for")
        self._gzip = encoding != "deflate"
        self._zlib: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None

    def decompress(self, data: bytes, room: int) -> bytes:
        if self._zlib is None:  # deflate: RFC 9110 says zlib-wrapped; some servers send it raw
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        try:
            out = self._zlib.decompress(data, room + 1)
        except zlib.error as exc:
            raise UnknownOutcomeError("MalformedAnswer", f"the answer's body cannot be decompressed: {exc}") from exc
        if len(out) > room or self._zlib.unconsumed_tail:
            raise _too_large()
        return out

    def flush(self, room: int) -> bytes:
        if self._zlib is None:
            return b""
        if self._gzip and not self._zlib.eof:
            raise UnknownOutcomeError("MalformedAnswer", "the answer's gzip body is cut off")
        out = self._zlib.flush()
        if len(out) > room:
            raise _too_large()
        return out


def _too_large() -> TransientError:
    return TransientError("ResponseTooLarge", f"the answer is larger than {MAX_BODY // (1024 * 1024)} MiB")


def _malformed(exc: Exception) -> UnknownOutcomeError:
    return UnknownOutcomeError("MalformedAnswer", f"the answer is not valid HTTP: {exc}")
