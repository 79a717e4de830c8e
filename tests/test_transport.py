"""The HTTP transport over real loopback sockets: keep-alive pooling, answers in every
framing and encoding, and each failure mapped to the error the pipeline relies on
(nothing sent → NotSentError; written → UnknownOutcomeError; never a silent re-send)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batchmig.emulator import EmulatorSpec
from batchmig.engine import transport as transport_module
from batchmig.engine.transport import LAST_LOOK, TIMEOUT, HttpTransport
from batchmig.errors import NotSentError, PermanentError, TransientError, UnknownOutcomeError
from batchmig.plugin import HttpRequest
from batchmig.sandbox.host import Sandbox
from batchmig.testing.testcloud import TestcloudEmulator

pytestmark = pytest.mark.anyio


@dataclass
class Seen:
    """What the raw server received: (connection number, request line, body) per request."""

    requests: list[tuple[int, str, bytes]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0


Reply = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]
"""Answers request number n (0-based) on the writer; returns whether to keep the connection."""


def answer(body: bytes = b"{}", *, status: str = "200 OK", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n").encode() + body


def chunked(*parts: bytes, headers: str = "") -> bytes:
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)
    return f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{headers}\r\n".encode() + chunks + b"0\r\n\r\n"


def always(data: bytes, keep: bool = True) -> Reply:
    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        return keep
    return reply


@asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[tuple[str, Seen]]:
    """An HTTP/1.1 server written by hand, so a test controls every byte of the answer."""
    seen = Seen()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        number = seen.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *rest = head.decode().split("\r\n")
                headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in rest if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen.requests.append((number, line, body))
                seen.headers.append(headers)
                if not await reply(len(seen.requests) - 1, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


def post(url: str, body: bytes = b'{"a": 1}', **headers: str) -> HttpRequest:
    return HttpRequest("POST", url + "/v1?x=1", {"Content-Type": "application/json", **headers}, body)


async def test_a_kept_alive_connection_serves_the_next_calls() -> None:
    async with raw_server(always(answer(b'{"ok": true}'))) as (url, seen), HttpTransport(5) as transport:
        for _ in range(3):
            response = await transport.send(post(url, X_Tc_Action="Describe"))
            assert (response.status, response.body) == (200, b'{"ok": true}')
            assert response.headers["content-length"] == "12"
    assert seen.connections == 1
    assert [r[1] for r in seen.requests] == ["POST /v1?x=1 HTTP/1.1"] * 3
    assert seen.requests[0][2] == b'{"a": 1}'
    assert seen.headers[0]["host"] == url.removeprefix("http://")
    assert seen.headers[0]["x_tc_action"] == "Describe"
    assert seen.headers[0]["content-length"] == "8"


async def test_an_idle_connection_the_server_closed_is_replaced_before_writing() -> None:
    """A server (in a thread of its own) closes each connection a moment after answering.
    The client's event loop is kept from noticing the second close (a blocking sleep), so
    only the check right before the write can see it: the request goes on a new
    connection, not into a closed one (which would be an unknown outcome)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        for _ in range(3):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while not data.endswith(b'{"a": 1}'):
                    data += conn.recv(65536)
                received.append(data)
                conn.sendall(answer())
                time.sleep(0.05)
        listener.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    async with HttpTransport(5) as transport:
        await transport.send(post(url))
        await asyncio.sleep(0.2)  # the loop sees the close: the connection leaves the pool
        await transport.send(post(url))
        time.sleep(0.2)  # the FIN waits in the socket, unread by the loop
        response = await transport.send(post(url))
    server.join(5)
    assert response.status == 200
    assert len(received) == 3  # each request sent once, each on a fresh connection


async def test_an_answer_with_connection_close_is_not_reused() -> None:
    async with raw_server(always(answer(headers="Connection: close\r\n"), keep=False)) as (url, seen), \
            HttpTransport(5) as transport:
        for _ in range(2):
            assert (await transport.send(post(url))).status == 200
    assert seen.connections == 2


@pytest.mark.parametrize("data", [
    chunked(b'{"a"', b": 1", b"}"),
    chunked(gzip.compress(b'{"a": 1}'), headers="Content-Encoding: gzip\r\n"),
    answer(zlib.compress(b'{"a": 1}'), headers="Content-Encoding: deflate\r\n"),
    answer(zlib.compress(b'{"a": 1}')[2:-4], headers="Content-Encoding: deflate\r\n"),  # raw deflate
    b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b'{"a": 1}'),
], ids=["chunked", "chunked-gzip", "deflate", "raw-deflate", "interim-100"])
async def test_answers_in_every_framing_and_encoding(data: bytes) -> None:
    async with raw_server(always(data)) as (url, seen), HttpTransport(5) as transport:
        for _ in range(2):
            assert (await transport.send(post(url))).body == b'{"a": 1}'
    assert seen.connections == 1
    assert seen.headers[0]["accept-encoding"] == "gzip, deflate"


async def test_an_answer_read_until_the_server_closes() -> None:
    async with raw_server(always(b"HTTP/1.0 200 OK\r\n\r\n{\"a\": 1}", keep=False)) as (url, seen), \
            HttpTransport(5) as transport:
        assert (await transport.send(post(url))).body == b'{"a": 1}'
        assert (await transport.send(post(url))).body == b'{"a": 1}'
    assert seen.connections == 2


@pytest.mark.parametrize("data", [
    answer(b"x" * 2048),
    chunked(b"x" * 1000, b"x" * 1000),
    answer(gzip.compress(b"x" * 100_000), headers="Content-Encoding: gzip\r\n"),  # small on the wire
], ids=["content-length", "chunked", "gzip-bomb"])
async def test_an_answer_over_max_body_is_refused(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "MAX_BODY", 1024)
    async with raw_server(always(data)) as (url, seen), HttpTransport(5) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send(post(url))
        assert caught.value.code == "ResponseTooLarge"
        monkeypatch.setattr(transport_module, "MAX_BODY", 16 * 1024 * 1024)
        assert (await transport.send(post(url))).status == 200  # on a new connection
    assert seen.connections == 2


async def test_no_answer_within_the_call_timeout_is_an_unknown_outcome() -> None:
    async def silent(n: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async with raw_server(silent) as (url, seen), HttpTransport(0.3) as transport:
        with pytest.raises(UnknownOutcomeError) as caught:
            await transport.send(post(url))
    assert caught.value.code == TIMEOUT
    assert len(seen.requests) == 1


@pytest.mark.parametrize(("data", "moment"), [
    (b"", "after sending"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut", "while reading the answer"),
    (chunked(b"{}")[:-7], "while reading the answer"),
])
async def test_a_connection_broken_after_writing_is_an_unknown_outcome(data: bytes, moment: str) -> None:
    async with raw_server(always(data, keep=False)) as (url, seen), HttpTransport(5) as transport:
        for _ in range(2):
            with pytest.raises(UnknownOutcomeError) as caught:
                await transport.send(post(url))
            assert caught.value.code == "ConnectionLost" and moment in caught.value.message
    assert len(seen.requests) == 2  # one per send: nothing re-sent behind the pipeline's back


@pytest.mark.parametrize("data", [
    b"SMTP ready\r\n\r\n",
    answer(b"not gzip", headers="Content-Encoding: gzip\r\n"),
    answer(b"{}", headers="Content-Encoding: br\r\n"),
])
async def test_an_answer_that_is_not_http_is_a_malformed_answer(data: bytes) -> None:
    async with raw_server(always(data)) as (url, seen), HttpTransport(5) as transport:
        with pytest.raises(UnknownOutcomeError) as caught:
            await transport.send(post(url))
    assert caught.value.code == "MalformedAnswer"
    assert len(seen.requests) == 1


async def test_no_connection_is_not_sent() -> None:
    async with raw_server(always(answer())) as (url, _):
        pass  # closed: nobody listens on that port any more
    async with HttpTransport(5) as transport:
        with pytest.raises(NotSentError) as caught:
            await transport.send(post(url))
    assert caught.value.code == "ConnectionFailed"


async def test_the_last_look_runs_once_connected_and_can_keep_the_bytes_in() -> None:
    class Closed(Exception):
        pass

    looks: list[int] = []
    async with raw_server(always(answer())) as (url, seen), HttpTransport(5) as transport:
        def refuse() -> None:
            looks.append(seen.connections)
            raise Closed

        token = LAST_LOOK.set(refuse)
        try:
            with pytest.raises(Closed):
                await transport.send(post(url))
        finally:
            LAST_LOOK.reset(token)
        await asyncio.sleep(0.05)
        assert seen.requests == []  # nothing written
        token = LAST_LOOK.set(lambda: looks.append(len(seen.requests)))
        try:
            await transport.send(post(url))
        finally:
            LAST_LOOK.reset(token)
    assert looks == [1, 0]  # connected (the server counted it) before the look; the look before the write
    assert seen.connections == 1  # the connection the refused call got serves the next


async def test_calls_beyond_the_pool_limit_wait_for_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow(n: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.2)
        writer.write(answer())
        return True

    monkeypatch.setattr(transport_module, "POOL_LIMIT", 1)
    async with raw_server(slow) as (url, seen), HttpTransport(5) as transport:
        answers = await asyncio.gather(*(transport.send(post(url)) for _ in range(3)))
        assert [a.status for a in answers] == [200] * 3
        assert seen.connections == 1
    monkeypatch.setattr(transport_module, "POOL_LIMIT", 0)  # no connection to be had
    async with raw_server(slow) as (url, seen), HttpTransport(0.2) as transport:
        with pytest.raises(NotSentError):
            await transport.send(post(url))
    assert seen.connections == 0


async def test_at_the_pool_limit_a_burst_to_two_origins_waits_for_its_own_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first origin's calls take both slots; the other origin, with none, takes one
    over once it is idle, and from then on each origin's calls wait for its own
    connection rather than close the other's, which is only between two calls."""
    async def slow(n: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(answer())
        return True

    monkeypatch.setattr(transport_module, "POOL_LIMIT", 2)
    monkeypatch.setattr(transport_module, "STEAL_AFTER", 3600.0)  # no connection counts as unused
    async with raw_server(slow) as (url_a, seen_a), raw_server(slow) as (url_b, seen_b), \
            HttpTransport(5) as transport:
        answers = await asyncio.gather(*(transport.send(post(url)) for url in (url_a, url_b) for _ in range(4)))
        assert [a.status for a in answers] == [200] * 8
    assert (seen_a.connections, seen_b.connections) == (2, 1)  # before: (2, 2), a connection closed per switch


async def test_at_the_pool_limit_an_origin_without_a_connection_takes_an_idle_ones_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "POOL_LIMIT", 1)
    monkeypatch.setattr(transport_module, "STEAL_AFTER", 3600.0)
    async with raw_server(always(answer())) as (url_a, seen_a), raw_server(always(answer())) as (url_b, seen_b), \
            HttpTransport(5) as transport:
        for url in (url_a, url_b, url_a):
            assert (await transport.send(post(url))).status == 200
        assert transport._open == 1
    assert (seen_a.connections, seen_b.connections) == (2, 1)


async def test_at_the_pool_limit_an_origin_without_a_connection_goes_before_the_busy_ones_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Origin A holds every slot and has calls queued; a call to origin B, which has no
    connection, takes the first connection A returns instead of waiting behind A's queue
    (it would wait until the call timeout, and fail unsent)."""
    gate = asyncio.Semaphore(0)

    async def held(n: int, writer: asyncio.StreamWriter) -> bool:
        await gate.acquire()
        writer.write(answer())
        return True

    monkeypatch.setattr(transport_module, "POOL_LIMIT", 2)
    monkeypatch.setattr(transport_module, "STEAL_AFTER", 3600.0)
    async with raw_server(held) as (url_a, seen_a), raw_server(always(answer())) as (url_b, seen_b), \
            HttpTransport(5) as transport:
        calls_a = [asyncio.ensure_future(transport.send(post(url_a))) for _ in range(4)]  # 2 sent, 2 queued
        call_b = asyncio.ensure_future(transport.send(post(url_b)))
        await asyncio.sleep(0.05)
        gate.release()  # one answer of A: its connection goes to B
        assert (await call_b).status == 200
        assert sum(call.done() for call in calls_a) == 1
        for _ in range(3):
            gate.release()
        assert [(await call).status for call in calls_a] == [200] * 4
    assert (seen_a.connections, seen_b.connections) == (2, 1)


async def test_each_call_fails_at_its_own_deadline_whatever_it_waits_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """One timer serves every call's deadline, whatever the call waits on: the first call is
    sent and unanswered; the others wait for the only connection, each gets a new one when
    the call before it times out (0.1 s before its own deadline), is sent, and times out in
    turn, at its own deadline."""
    async def silent(n: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(10)
        return False

    monkeypatch.setattr(transport_module, "POOL_LIMIT", 1)
    loop = asyncio.get_running_loop()
    async with raw_server(silent) as (url, seen), HttpTransport(0.4) as transport:
        async def timed(delay: float) -> tuple[str, float]:
            await asyncio.sleep(delay)
            started = loop.time()
            with pytest.raises(UnknownOutcomeError) as caught:
                await transport.send(post(url))
            return caught.value.code, loop.time() - started

        outcomes = await asyncio.wait_for(asyncio.gather(timed(0), timed(0.1), timed(0.2)), 10)
        assert not transport._deadlines and transport._timer is None
    assert [code for code, _ in outcomes] == [TIMEOUT] * 3
    assert all(0.39 <= elapsed < 3 for _, elapsed in outcomes), outcomes
    assert len(seen.requests) == 3


async def test_a_call_cancelled_while_waiting_for_a_connection_leaves_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = asyncio.Event()

    async def held(n: int, writer: asyncio.StreamWriter) -> bool:
        await release.wait()
        writer.write(answer())
        return True

    monkeypatch.setattr(transport_module, "POOL_LIMIT", 1)
    async with raw_server(held) as (url, seen), HttpTransport(5) as transport:
        first = asyncio.ensure_future(transport.send(post(url)))  # takes the only connection
        waiting = asyncio.ensure_future(transport.send(post(url)))
        await asyncio.sleep(0.05)
        (origin,) = transport._origins.values()
        assert len(origin.waiters) == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not origin.waiters
        release.set()
        assert (await first).status == 200
        assert (await transport.send(post(url))).status == 200
    assert len(seen.requests) == 2  # the cancelled call was never sent


async def test_a_header_with_a_line_break_is_refused_unsent() -> None:
    async with raw_server(always(answer())) as (url, seen), HttpTransport(5) as transport:
        with pytest.raises(PermanentError):
            await transport.send(post(url, X_Evil="a\r\nX-Injected: 1"))
    assert seen.connections == 0


async def test_https_against_the_tls_sandbox(tmp_path: Path) -> None:
    emulators = {"testcloud": EmulatorSpec("testcloud", TestcloudEmulator, {})}
    async with Sandbox(emulators, tmp_path / "box", tls=True) as sandbox:
        url = sandbox.endpoints["testcloud"]
        assert url.startswith("https://")
        async with HttpTransport(5, tmp_path / "box" / "ca.pem") as transport:
            statuses = [(await transport.send(post(url))).status for _ in range(3)]
            assert statuses[0] == statuses[1] == statuses[2] and 200 <= statuses[0] < 500
            assert transport._open == 1  # one TLS connection served all three
        async with HttpTransport(5) as untrusting:
            with pytest.raises(NotSentError) as caught:
                await untrusting.send(post(url))
            assert "certificate" in caught.value.message.lower()
