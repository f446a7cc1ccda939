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
