"""``POST /chat/attach``: a file with a message, streamed in under the media limit."""

from __future__ import annotations

import aiohttp

import tests.support.media_samples as samples
from bot.config import MediaSettings
from bot.engine import Engine
from bot.media import MediaProcessor
from bot.messages import ConversationKey, account_owner
from bot.store.memory import MemoryStore
from tests.support.web_client import Client, page_token, parse_sse, sign_up

STREAM = {"Accept": "text/event-stream"}


def form(text: str | None, name: str | None, data: bytes = b"", kind: str = "") -> aiohttp.FormData:
    body = aiohttp.FormData(default_to_multipart=True)
    if text is not None:
        body.add_field("text", text)
    if name is not None:
        body.add_field("file", data, filename=name, content_type=kind or "application/octet-stream")
    return body


async def attach(client: Client, body: aiohttp.FormData) -> aiohttp.ClientResponse:
    token = await page_token(client, "/chat")
    return await client.post("/chat/attach", data=body, headers={**STREAM, "X-CSRF-Token": token})


async def stored_files(store: MemoryStore, client: Client) -> list[tuple[str, list[str]]]:
    account = await store.find_account("ada")
    assert account is not None
    key = ConversationKey(account_owner(account.id), "ada", "direct")
    turns = (await store.load_window(key, 10)).turns
    return [(t.text, [a.filename for a in t.attachments]) for t in turns if t.role == "user"]


async def test_a_file_larger_than_the_app_body_limit_is_taken(
    client: Client, store: MemoryStore
) -> None:
    await sign_up(client, "ada")
    notes = b"word " * 40_000  # 200 kB: well over the 64 KiB other posts may carry
    response = await attach(client, form("look", "big.txt", notes, "text/plain"))
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    assert events[-1][0] == "done" and events[-1][1]["kind"] == "chat"
    assert await stored_files(store, client) == [("look", ["big.txt"])]


async def test_an_image_is_taken(client: Client, store: MemoryStore) -> None:
    await sign_up(client, "ada")
    response = await attach(client, form("", "cat.png", samples.png(), "image/png"))
    assert parse_sse(await response.text())[-1][1]["kind"] == "chat"
    assert await stored_files(store, client) == [("", ["cat.png"])]


async def test_a_file_over_the_media_limit_is_refused_unread(
    client: Client, store: MemoryStore, engine: Engine
) -> None:
    engine.media = MediaProcessor(MediaSettings(max_bytes=1000))
    await sign_up(client, "ada")
    response = await attach(client, form("hi", "big.txt", b"x" * 5000, "text/plain"))
    assert response.status == 400
    assert await response.json() == {"error": "big.txt is larger than 1 kB, the most I take."}
    assert await stored_files(store, client) == []


async def test_no_file_is_a_clear_error(client: Client) -> None:
    await sign_up(client, "ada")
    response = await attach(client, form("hi", None))
    assert (response.status, await response.json()) == (400, {"error": "Choose a file first."})


async def test_a_json_body_is_refused(client: Client) -> None:
    await sign_up(client, "ada")
    token = await page_token(client, "/chat")
    response = await client.post(
        "/chat/attach", json={"text": "hi"}, headers={**STREAM, "X-CSRF-Token": token}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "Send the file as multipart/form-data."


async def test_without_the_csrf_token_nothing_is_read(client: Client, store: MemoryStore) -> None:
    await sign_up(client, "ada")
    response = await client.post("/chat/attach", data=form("hi", "a.txt", b"hello"), headers=STREAM)
    assert response.status in (401, 403)
    assert await stored_files(store, client) == []


async def test_logged_out_is_told_to_log_in(client: Client) -> None:
    response = await client.post("/chat/attach", data=form("hi", "a.txt", b"hello"), headers=STREAM)
    assert response.status in (401, 403)
