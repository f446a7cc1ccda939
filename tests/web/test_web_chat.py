"""The web chat: the page, streaming replies, reset and retry, one history everywhere."""

from __future__ import annotations

import asyncio

import pytest

from bot import engine_parts
from bot.backends.guard import ReplyGuard
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import Engine
from bot.messages import ConversationKey, Incoming, account_owner
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from tests.support.clocks import Clock
from tests.support.engine import build_engine
from tests.support.fakes import WindowEcho, make_persona
from tests.support.web_client import (
    FAST,
    Client,
    MakeClient,
    ask,
    page_token,
    parse_sse,
    post_form,
    sign_up,
)

STREAM = {"Accept": "text/event-stream"}


async def say(client: Client, text: str) -> list[tuple[str, dict[str, object]]]:
    token = await page_token(client, "/chat")
    response = await client.post(
        "/chat/send", json={"text": text}, headers={**STREAM, "X-CSRF-Token": token}
    )
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return parse_sse(await response.text())


async def test_the_chat_needs_a_login(client: Client) -> None:
    response = await client.get("/chat", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?next=/chat"


async def test_the_page_greets_a_new_conversation(client: Client) -> None:
    await sign_up(client, "ada")
    html = await (await client.get("/chat")).text()
    assert "Hello ada, I am Professor Ada." in html
    assert '<script src="/static/chat.js" defer></script>' in html


async def test_a_reply_streams_as_events_and_lands_in_the_history(client: Client) -> None:
    await sign_up(client, "ada")
    events = await say(client, "hello there")
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 1, "the reply arrives in pieces"
    assert events[-1] == (
        "done",
        {"text": "re:hello there saw:[]", "kind": "chat", "persona": "Professor Ada"},
    )
    assert "".join(str(d) for d in deltas) == "re:hello there saw:[]"
    html = await (await client.get("/chat")).text()
    assert "hello there" in html and "re:hello there saw:[]" in html
    # the page opened the conversation with the greeting, stored once as its first turn
    assert html.count("Hello ada, I am Professor Ada.") == 1
    assert html.index("Hello ada, I am") < html.index("hello there")


async def test_retry_and_reset(client: Client) -> None:
    await sign_up(client, "ada")
    await say(client, "one")
    retried = await say(client, "/retry")
    assert retried[-1][1]["text"] == "re:one saw:[]"
    reset = await say(client, "/reset")
    assert reset[-1][1]["kind"] == "command"
    assert "New conversation" in str(reset[-1][1]["text"])
    html = await (await client.get("/chat")).text()
    assert "re:one" not in html and "Hello ada, I am Professor Ada." in html


async def test_without_javascript_the_form_posts_and_comes_back(client: Client) -> None:
    await sign_up(client, "ada")
    response = await post_form(client, "/chat/send", {"text": "plain form"}, token_from="/chat")
    assert response.status == 303 and response.headers["Location"] == "/chat"
    assert "re:plain form saw:[]" in await (await client.get("/chat")).text()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({"text": "   "}, "Write a message first", id="empty"),
        pytest.param(
            {"text": "x" * (EngineSettings().max_message_chars + 1)}, "too long", id="too-long"
        ),
        pytest.param({"words": "hi"}, "Write a message first", id="no-text"),
    ],
)
async def test_bad_messages_are_refused(client: Client, body: dict[str, str], problem: str) -> None:
    await sign_up(client, "ada")
    token = await page_token(client, "/chat")
    response = await client.post("/chat/send", json=body, headers={**STREAM, "X-CSRF-Token": token})
    assert response.status == 400
    assert problem in (await response.json())["error"]


async def test_the_page_takes_messages_as_long_as_the_engine_does(
    make_client: MakeClient, store: MemoryStore
) -> None:
    """ENGINE__MAX_MESSAGE_CHARS is the web chat's limit too: the text box says it, and
    a longer message is refused before it reaches the engine."""
    engine = build_engine(store, settings=EngineSettings(max_message_chars=50))
    client = await make_client(engine=engine)
    await sign_up(client, "ada")
    assert 'maxlength="50"' in await (await client.get("/chat")).text()
    token = await page_token(client, "/chat")
    headers = {**STREAM, "X-CSRF-Token": token}
    refused = await client.post("/chat/send", json={"text": "x" * 51}, headers=headers)
    assert refused.status == 400 and "too long" in (await refused.json())["error"]
    taken = await client.post("/chat/send", json={"text": "y" * 50}, headers=headers)
    assert taken.status == 200
    assert "re:" + "y" * 50 in await taken.text()


async def test_an_expired_session_tells_the_script_to_log_in(client: Client, clock: Clock) -> None:
    await sign_up(client, "ada")
    token = await page_token(client, "/chat")
    clock.advance(30 * 24 * 3600)
    response = await client.post(
        "/chat/send",
        json={"text": "hello"},
        headers={**STREAM, "X-CSRF-Token": token, "Referer": str(client.make_url("/chat"))},
    )
    assert response.status == 401
    assert (await response.json())["login"] == "/login?next=/chat"


async def test_the_web_continues_the_linked_private_chat(client: Client, engine: Engine) -> None:
    await sign_up(client, "ada")
    code_page = await post_form(client, "/account/link-code", {}, token_from="/account")
    code = (await code_page.text()).split('id="link-code">', 1)[1][:9]
    await ask(engine, Incoming("telegram", "42", "Ada T", "42", True, f"/link {code}"))
    dm = Incoming("telegram", "42", "Ada T", "42", True, "/link confirm")
    assert (await ask(engine, dm)).startswith("Linked:")
    await ask(engine, Incoming("telegram", "42", "Ada T", "42", True, "from telegram"))
    events = await say(client, "from the web")
    assert events[-1][1]["text"] == "re:from the web saw:[from telegram]"


async def test_a_reply_is_kept_when_the_browser_goes_away(
    make_client: MakeClient, store: MemoryStore
) -> None:
    slow = WindowEcho(chunk=2, pause=0.01)
    library = PersonaLibrary([make_persona("ada", "Professor Ada", backend="echo")])
    client = await make_client(
        engine=engine_parts.build_engine(store, library, ReplyGuard({"echo": slow}, FAST))
    )
    await sign_up(client, "ada")
    token = await page_token(client, "/chat")
    response = await client.post(
        "/chat/send",
        json={"text": "a long question"},
        headers={**STREAM, "X-CSRF-Token": token},
    )
    await response.content.readany()
    response.close()  # the tab is closed mid-reply
    account = await store.find_account("ada")
    assert account is not None
    key = ConversationKey(account_owner(account.id), "ada", "direct")
    for _ in range(200):
        turns = (await store.load_window(key, 10)).turns
        if len(turns) == 3:
            break
        await asyncio.sleep(0.01)
    # the greeting the page showed, the question, the reply
    assert [t.role for t in turns] == ["assistant", "user", "assistant"]
    assert turns[2].text == "re:a long question saw:[]"


async def test_without_the_script_a_rate_limited_message_comes_back_in_the_composer(
    make_client: MakeClient, store: MemoryStore
) -> None:
    backend = WindowEcho()
    personas = PersonaLibrary([make_persona("ada", "Professor Ada", backend=backend.name)])
    engine = engine_parts.build_engine(
        store,
        personas,
        ReplyGuard({backend.name: backend}, FAST),
        rate_limit=RateLimitSettings(per_minute=1, burst=1),
    )
    client = await make_client(engine=engine)
    await sign_up(client, "ada")
    first = await post_form(client, "/chat/send", {"text": "one"}, token_from="/chat")
    assert first.status == 303
    held = await post_form(client, "/chat/send", {"text": "two <b>"}, token_from="/chat")
    assert held.status == 429
    html = await held.text()
    assert ">two &lt;b&gt;</textarea>" in html, "the text is back in the composer, escaped"
    assert "you can send another message in" in html and " 0 s" not in html


async def test_the_page_says_when_the_chosen_persona_is_gone(
    client: Client, engine: Engine
) -> None:
    await sign_up(client, "ada")
    await say(client, "/persona morrow")
    engine.personas.replace_with([p for p in engine.personas if p.id != "morrow"])  # removed
    html = await (await client.get("/chat")).text()
    assert "The persona &#39;morrow&#39; you chose is no longer here" in html
    assert "talking to Professor Ada" in html


async def test_page_titles_name_the_site_once(client: Client) -> None:
    home = await (await client.get("/")).text()
    assert "<title>PersonaBridge</title>" in home
    login = await (await client.get("/login")).text()
    assert "<title>Log in · PersonaBridge</title>" in login
