"""The account page: link codes and linking, unlink, persona, export, delete."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from bot.engine import Engine
from bot.messages import Identity, Incoming
from bot.store.memory import MemoryStore
from tests.support.web_client import (
    PASSWORD,
    Client,
    MakeClient,
    ask,
    log_in,
    page_token,
    post_form,
    session_cookie,
    sign_up,
)

CODE = re.compile(r'id="link-code">([A-Z2-9]{4}-[A-Z2-9]{4})<')


def telegram(text: str, user: str = "42", name: str = "Ada on Telegram") -> Incoming:
    return Incoming("telegram", user, name, chat_id=user, private=True, text=text)


async def link(engine: Engine, code: str, *, move: bool = False, user: str = "42") -> str:
    """``/link CODE`` then its confirmation, as the same Telegram user; the final answer."""
    asked = await ask(engine, telegram(f"/link {code}", user=user))
    assert "Nothing is linked yet" in asked, asked
    return await ask(engine, telegram("/link confirm move" if move else "/link confirm", user=user))


async def new_code(client: Client) -> tuple[str, str]:
    response = await post_form(client, "/account/link-code", {}, token_from="/account")
    assert response.status == 200
    html = await response.text()
    match = CODE.search(html)
    assert match, "the page shows the code"
    return match.group(1), html


@pytest.mark.parametrize(
    ("bot", "deep_link"),
    [
        pytest.param(None, False, id="no-bot-username"),
        pytest.param("persona_bot", True, id="telegram-deep-link"),
    ],
)
async def test_link_code_page_says_what_to_send(
    make_client: MakeClient, bot: str | None, deep_link: bool
) -> None:
    client = await make_client(telegram_bot_username=bot)
    await sign_up(client, "ada")
    code, html = await new_code(client)
    assert f"/link {code}" in html
    for place in ("Telegram", "Discord", "Terminal"):
        assert place in html
    assert (f"https://t.me/persona_bot?start=link-{code}" in html) is deep_link
    assert "It works once, for 10 minutes" in html


async def test_a_code_redeemed_on_telegram_shows_on_the_account_page(
    client: Client, store: MemoryStore, engine: Engine
) -> None:
    await sign_up(client, "ada")
    code, _ = await new_code(client)
    reply = await link(engine, code)
    assert reply.startswith("Linked:")
    page = await (await client.get("/account")).text()
    assert "telegram" in page and "Ada on Telegram" in page and "<code>42</code>" in page
    assert "was linked to the Telegram account Ada on Telegram (id 42)" in page, "a notice"
    linked = await store.get_identity(Identity("telegram", "42"))
    assert linked is not None
    stamp = datetime.fromtimestamp(linked.linked_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert stamp in page, "when it was linked"
    again = await ask(engine, telegram(f"/link {code}", user="43"))
    assert "unknown, used or expired" in again


async def test_the_telegram_deep_link_form_links_too(client: Client, engine: Engine) -> None:
    await sign_up(client, "ada")
    code, _ = await new_code(client)
    asked = await ask(engine, telegram(f"/start link-{code}"))
    assert '"ada"' in asked and "Nothing is linked yet" in asked
    assert "Ada on Telegram" not in await (await client.get("/account")).text()
    assert (await ask(engine, telegram("/link confirm"))).startswith("Linked:")


@pytest.mark.parametrize("move", [pytest.param(True, id="move"), pytest.param(False, id="keep")])
async def test_linking_moves_the_guests_conversation_only_when_asked(
    client: Client, engine: Engine, move: bool
) -> None:
    await ask(engine, telegram("hello from telegram"))
    await sign_up(client, "ada")
    code, _ = await new_code(client)
    await link(engine, code, move=move)
    chat = await (await client.get("/chat")).text()
    assert ("hello from telegram" in chat) is move


async def test_unlink(client: Client, engine: Engine, store: MemoryStore) -> None:
    await sign_up(client, "ada")
    code, _ = await new_code(client)
    await link(engine, code)
    response = await post_form(
        client, "/account/unlink", {"platform": "telegram", "user_id": "42"}, token_from="/account"
    )
    assert response.headers["Location"] == "/account?done=unlinked"
    page = await (await client.get("/account?done=unlinked")).text()
    assert "identity is unlinked" in page
    assert "<code>42</code>" not in page, "no longer in the linked list"
    assert "(id 42) was unlinked from your account on the account page" in page, "a notice"
    assert await store.get_identity(Identity("telegram", "42")) is None


async def test_unlinking_someone_elses_identity_does_nothing(
    make_client: MakeClient, engine: Engine, store: MemoryStore
) -> None:
    ada, bob = await make_client(), await make_client()
    await sign_up(ada, "ada")
    await sign_up(bob, "bob")
    code, _ = await new_code(ada)
    await link(engine, code)
    response = await post_form(
        bob, "/account/unlink", {"platform": "telegram", "user_id": "42"}, token_from="/account"
    )
    assert response.headers["Location"] == "/account?done=not_linked"
    assert await store.get_identity(Identity("telegram", "42")) is not None


async def test_choosing_the_default_persona(client: Client, engine: Engine) -> None:
    await sign_up(client, "ada")
    response = await post_form(
        client, "/account/persona", {"persona": "morrow"}, token_from="/account"
    )
    assert response.headers["Location"] == "/account?done=persona"
    assert (
        "You talk to <strong>Captain Morrow</strong>" in await (await client.get("/account")).text()
    )
    chat = await (await client.get("/chat")).text()
    assert '<h1 id="persona-name">Captain Morrow</h1>' in chat
    unknown = await post_form(
        client, "/account/persona", {"persona": "nobody"}, token_from="/account"
    )
    assert unknown.status == 400


async def test_export_downloads_the_accounts_data(client: Client, engine: Engine) -> None:
    await sign_up(client, "ada")
    code, _ = await new_code(client)
    await link(engine, code)
    await ask(engine, telegram("a message to export"))
    response = await client.get("/account/export")
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(await response.text())
    assert data["account"]["username"] == "ada"
    assert [i["platform"] for i in data["identities"]] == ["telegram"]
    texts = [t["text"] for c in data["conversations"] for t in c["turns"]]
    assert "a message to export" in texts
    assert "argon2" not in json.dumps(data)


async def test_delete_account_with_password(
    client: Client, engine: Engine, store: MemoryStore
) -> None:
    await sign_up(client, "ada")
    code, _ = await new_code(client)
    await link(engine, code)
    wrong = await post_form(
        client, "/account/delete", {"password": "not it at all"}, token_from="/account"
    )
    assert wrong.status == 403 and "nothing was deleted" in await wrong.text()
    assert await store.find_account("ada") is not None
    done = await post_form(client, "/account/delete", {"password": PASSWORD}, token_from="/account")
    assert done.status == 303 and done.headers["Location"] == "/?done=deleted"
    assert session_cookie(client) is None
    assert await store.find_account("ada") is None
    assert await store.get_identity(Identity("telegram", "42")) is None
    assert "have been deleted" in await (await client.get("/?done=deleted")).text()
    assert (await log_in(client, "ada")).status == 401
    assert await page_token(client, "/login")
