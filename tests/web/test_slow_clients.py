"""Slow clients (slowloris): headers and bodies trickled a byte at a time are cut off.

A raw socket on loopback sends one byte per pause; the server must close the connection
long before the trickle ends. (Bounded: at most ``TRICKLE`` bytes, then the test fails.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.web import WebAdapter, create_app
from auth import AccountService
from bot.config import WebSettings
from bot.engine import Engine
from bot.store.memory import MemoryStore

PAUSE = 0.05
TRICKLE = 200  # 10 s of trickling at most; the deadlines below are 0.5 s


@pytest.fixture
async def server(
    store: MemoryStore, engine: Engine, accounts: AccountService
) -> AsyncIterator[WebAdapter]:
    settings = WebSettings(port=0, header_timeout=0.5, body_timeout=0.5)
    app = create_app(engine, accounts, upkeep=store, settings=settings)
    async with WebAdapter(app, access_log=False, shutdown_timeout=1.0) as adapter:
        yield adapter


async def trickle(adapter: WebAdapter, head: bytes, then: bytes) -> int:
    """Send ``head`` at once, then ``then`` one byte per pause until the server closes
    the connection; the number of trickled bytes it took."""
    assert adapter.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    writer.write(head)
    sent = 0
    try:
        for byte in then[:TRICKLE]:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            try:
                data = await asyncio.wait_for(reader.read(65536), PAUSE)
            except TimeoutError:
                continue
            if data == b"" or reader.at_eof():
                return sent  # closed (perhaps after a short error answer)
        return sent
    except (ConnectionResetError, BrokenPipeError):
        return sent
    finally:
        writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut_off(server: WebAdapter) -> None:
    endless_header = b"X-Padding: " + b"a" * 1000
    sent = await trickle(server, b"GET / HTTP/1.1\r\nHost: x\r\n", endless_header)
    assert sent < len(endless_header[:TRICKLE]), "the server waited for the whole trickle"


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(server: WebAdapter) -> None:
    body = b"username=" + b"a" * 1000
    head = (
        b"POST /login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    sent = await trickle(server, head, body)
    assert sent < len(body[:TRICKLE]), "the server waited for the whole trickle"


async def test_a_client_at_normal_speed_is_served(server: WebAdapter) -> None:
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for _ in range(3):  # keep-alive: several requests on one connection
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 200")
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
    writer.close()


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One GET /healthz on an open connection; its status line."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 5)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), 5)) != b"\r\n":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def test_an_idle_keep_alive_connection_outlives_the_head_deadline(
    server: WebAdapter,
) -> None:
    """The head deadline counts from a request's first byte: a connection left idle
    between requests (longer than the deadline) is not cut, and serves the next one."""
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        assert (await _get(reader, writer)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(1.2)  # over twice the 0.5 s deadline, idle
        assert (await _get(reader, writer)).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_a_slow_head_after_a_quick_request_on_one_connection_is_cut_off(
    server: WebAdapter,
) -> None:
    """The deadline of a head that trickles in after a quick request on the same
    connection counts from its own first byte, not the first request's: cut, but not
    before its own 0.5 s (a lower bound only: a loaded machine only makes it later)."""
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    loop = asyncio.get_running_loop()
    try:
        assert (await _get(reader, writer)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.3)  # the connection's timer, from that request, is due at 0.5
        started = loop.time()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        endless_header = b"X-Padding: " + b"a" * 1000
        sent = 0
        try:
            for byte in endless_header[:TRICKLE]:
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                try:
                    data = await asyncio.wait_for(reader.read(65536), PAUSE)
                except TimeoutError:
                    continue
                if data == b"" or reader.at_eof():
                    break
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert sent < TRICKLE, "the server waited for the whole trickle"
        assert loop.time() - started >= 0.45, "cut before the head's own deadline"
    finally:
        writer.close()
