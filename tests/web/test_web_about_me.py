"""The account page's "About you" form: the user's own persona, on the web."""

from __future__ import annotations

import json
from html import unescape

import pytest

from bot.engine import Engine
from bot.messages import Incoming
from bot.userpersona import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS
from tests.support.web_client import Client, ask, page_token, post_form, sign_up


def telegram(text: str) -> Incoming:
    return Incoming("telegram", "42", "Ada on Telegram", chat_id="42", private=True, text=text)


async def test_about_you_is_saved_shown_and_followed_by_the_chat(
    client: Client, engine: Engine
) -> None:
    await sign_up(client, "ada")
    response = await post_form(
        client,
        "/account/me",
        {"name": "Sam <b>", "description": 'A botanist "from" Lyon.\nHates cold tea.'},
        token_from="/account",
    )
    assert response.status == 303 and response.headers["Location"] == "/account?done=me"
    page = await (await client.get("/account?done=me")).text()
    assert "this is who you are to every persona" in page
    assert 'value="Sam &lt;b&gt;"' in page  # escaped, never markup
    assert unescape(page).count('A botanist "from" Lyon.\nHates cold tea.') == 1
    # a linked platform speaks as the same person: /me shows it there
    code_page = await post_form(client, "/account/link-code", {}, token_from="/account")
    code = unescape(await code_page.text()).split('id="link-code">', 1)[1][:9]
    await ask(engine, telegram(f"/link {code}"))
    assert (await ask(engine, telegram("/link confirm"))).startswith("Linked")
    assert "I call you Sam <b>." in await ask(engine, telegram("/me"))
    # and the export carries it
    exported = json.loads(await (await client.get("/account/export")).text())
    assert exported["preferences"]["user_name"] == "Sam <b>"


async def test_empty_fields_remove_what_was_kept(client: Client, engine: Engine) -> None:
    await sign_up(client, "ada")
    await post_form(
        client, "/account/me", {"name": "Sam", "description": "x"}, token_from="/account"
    )
    await post_form(client, "/account/me", {"name": "", "description": ""}, token_from="/account")
    exported = json.loads(await (await client.get("/account/export")).text())
    assert "user_name" not in exported["preferences"]
    assert "user_description" not in exported["preferences"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param({"name": "n" * (MAX_NAME_CHARS + 1)}, "name is too long", id="long-name"),
        pytest.param(
            {"description": "d" * (MAX_DESCRIPTION_CHARS + 1)},
            "description is too long",
            id="long-description",
        ),
    ],
)
async def test_too_long_is_refused_and_what_was_typed_stays_on_the_page(
    client: Client, fields: dict[str, str], problem: str
) -> None:
    await sign_up(client, "ada")
    response = await post_form(client, "/account/me", fields, token_from="/account")
    assert response.status == 400
    page = await response.text()
    assert problem in page
    assert next(iter(fields.values())) in page
    exported = json.loads(await (await client.get("/account/export")).text())
    assert exported["preferences"] == {}


async def test_without_the_csrf_token_nothing_is_kept(client: Client) -> None:
    await sign_up(client, "ada")
    await page_token(client, "/account")
    response = await client.post("/account/me", data={"name": "Mallory"}, allow_redirects=False)
    assert response.status == 403
    exported = json.loads(await (await client.get("/account/export")).text())
    assert exported["preferences"] == {}


async def test_the_chat_page_calls_you_by_the_name_you_chose(client: Client) -> None:
    await sign_up(client, "ada")
    await post_form(client, "/account/me", {"name": "Robin"}, token_from="/account")
    html = await (await client.get("/chat")).text()
    assert 'data-user="Robin"' in html
    assert "Hello Robin, I am Professor Ada." in html  # the greeting's {{user}}
    token = await page_token(client, "/chat")
    await client.post("/chat/send", data={"csrf_token": token, "text": "hi"})
    html = await (await client.get("/chat")).text()
    assert '<span class="author">Robin</span><p class="text">hi</p>' in html
