"""The greeting as a conversation's first turn, and the user's own persona (``/me``),
through the engine on MemoryStore and SqliteStore."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest

from bot import engine_parts
from bot.backends.base import ReplyContext
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import RateLimitSettings
from bot.engine import Engine
from bot.linking import create_link_code
from bot.messages import (
    ConversationKey,
    Identity,
    Incoming,
    ReplyKind,
    Turn,
    account_owner,
)
from bot.personas import Persona, PersonaLibrary
from bot.store.base import BackendState, Store
from bot.userpersona import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS
from tests.support.engine import build_engine, dm, key
from tests.support.engine import reply as say
from tests.support.fakes import make_persona
from tests.support.stores import store_kinds

FAST = GuardPolicy(first_delta_timeout=2.0, total_timeout=5.0, retries=0, retry_backoff=0)


class Recorder:
    """Answers ``reply N`` and keeps what each call was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.windows: list[list[tuple[str, str]]] = []
        self.messages: list[Turn] = []
        self.contexts: list[ReplyContext | None] = []

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
        context: ReplyContext | None = None,
    ) -> AsyncIterator[str]:
        self.windows.append([(t.role, t.text) for t in window])
        self.messages.append(message)
        self.contexts.append(context)
        yield f"reply {len(self.messages)}"

    async def aclose(self) -> None:
        pass


def personas() -> PersonaLibrary:
    ada = replace(
        make_persona("ada", "Professor Ada", backend="recorder"),
        alternate_greetings=("Back again, {{user}}?", "{{char}} waves at {{user}}."),
    )
    morrow = make_persona("morrow", "Captain Morrow", backend="recorder")
    silent = replace(make_persona("silent", "Silent Sam", backend="recorder"), greeting="")
    return PersonaLibrary([ada, morrow, silent])


store_kind = store_kinds("memory", "sqlite")


@pytest.fixture
def backend() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(store: Store, backend: Recorder) -> Engine:
    return build_engine(
        store, backend, personas=personas(), policy=FAST, rate_limit=RateLimitSettings(burst=1000)
    )


async def turns_of(store: Store, conversation: ConversationKey) -> list[tuple[str, str, str]]:
    window = await store.load_window(conversation, 100)
    return [(t.role, t.text, t.author) for t in window.turns]


# -- the greeting ---------------------------------------------------------------------


async def test_start_stores_the_greeting_and_the_model_sees_it_first(
    engine: Engine, store: Store, backend: Recorder
) -> None:
    done = await say(engine, dm("alice", "/start"))
    assert done.text.startswith("Hello Alice, I am Professor Ada.")
    greeting = ("assistant", "Hello Alice, I am Professor Ada.", "Professor Ada")
    assert await turns_of(store, key("alice")) == [greeting]
    await say(engine, dm("alice", "hi"))
    assert backend.windows == [[("assistant", "Hello Alice, I am Professor Ada.")]]
    assert [t[0] for t in await turns_of(store, key("alice"))] == ["assistant", "user", "assistant"]


async def test_start_on_an_ongoing_conversation_stores_nothing_more(
    engine: Engine, store: Store
) -> None:
    await say(engine, dm("alice", "/start"))
    await say(engine, dm("alice", "hi"))
    again = await say(engine, dm("alice", "/start"))
    assert again.text.startswith("Hello Alice, I am Professor Ada.")
    assert len(await turns_of(store, key("alice"))) == 3


async def test_a_conversation_from_before_greetings_keeps_going_without_one(
    engine: Engine, store: Store, backend: Recorder
) -> None:
    await say(engine, dm("alice", "first"))
    await say(engine, dm("alice", "second"))
    assert backend.windows[-1] == [("user", "first"), ("assistant", "reply 1")]
    assert (await turns_of(store, key("alice")))[0][:2] == ("user", "first")


async def test_reset_starts_the_new_conversation_with_the_first_greeting(
    engine: Engine, store: Store
) -> None:
    await say(engine, dm("alice", "old words"))
    done = await say(engine, dm("alice", "/reset"))
    assert done.kind is ReplyKind.COMMAND and "Hello Alice, I am Professor Ada." in done.text
    current = await turns_of(store, key("alice"))
    assert current == [("assistant", "Hello Alice, I am Professor Ada.", "Professor Ada")]
    records = await store.export_owner(key("alice").owner)
    archived = [r for r in records if r.archived]
    assert next(t.text for t in archived[0].turns) == "old words"


async def test_greeting_lists_and_picks_an_alternate(engine: Engine, store: Store) -> None:
    listing = await say(engine, dm("alice", "/greeting"))
    assert "1. Hello Alice, I am Professor Ada." in listing.text
    assert "3. Professor Ada waves at Alice." in listing.text
    done = await say(engine, dm("alice", "/greeting 2"))
    assert "Back again, Alice?" in done.text
    assert await turns_of(store, key("alice")) == [
        ("assistant", "Back again, Alice?", "Professor Ada")
    ]
    # /reset goes back to the first one
    await say(engine, dm("alice", "/reset"))
    assert (await turns_of(store, key("alice")))[0][1] == "Hello Alice, I am Professor Ada."


@pytest.mark.parametrize("arg", ["0", "4", "two", "99999999999"])
async def test_greeting_out_of_range_changes_nothing(
    engine: Engine, store: Store, arg: str
) -> None:
    await say(engine, dm("alice", "keep me"))
    done = await say(engine, dm("alice", f"/greeting {arg}"))
    assert "from 1 to 3" in done.text
    assert (await turns_of(store, key("alice")))[0][1] == "keep me"


async def test_a_persona_without_a_greeting_stores_none(engine: Engine, store: Store) -> None:
    await say(engine, dm("alice", "/persona silent"))
    assert await turns_of(store, key("alice", "silent")) == []
    assert "no greeting" in (await say(engine, dm("alice", "/greeting"))).text
    assert "New conversation" in (await say(engine, dm("alice", "/reset"))).text
    assert await turns_of(store, key("alice", "silent")) == []


async def test_switching_persona_greets_an_empty_conversation_once(
    engine: Engine, store: Store
) -> None:
    await say(engine, dm("alice", "/persona morrow"))
    await say(engine, dm("alice", "/persona ada"))
    await say(engine, dm("alice", "/persona morrow"))
    assert await turns_of(store, key("alice", "morrow")) == [
        ("assistant", "Hello Alice, I am Captain Morrow.", "Captain Morrow")
    ]


async def test_retry_never_regenerates_the_greeting(
    engine: Engine, store: Store, backend: Recorder
) -> None:
    await say(engine, dm("alice", "/start"))
    nothing = await say(engine, dm("alice", "/retry"))
    assert nothing.text == "There is nothing to retry yet." and backend.messages == []
    await say(engine, dm("alice", "question"))
    await say(engine, dm("alice", "/retry"))
    assert [m.text for m in backend.messages] == ["question", "question"]
    first, retried = backend.contexts
    assert first is not None and not first.retry
    assert retried is not None and retried.earlier_replies == ("reply 1",)
    assert backend.windows[1] == [("assistant", "Hello Alice, I am Professor Ada.")]
    texts = [t[1] for t in await turns_of(store, key("alice"))]
    assert texts == ["Hello Alice, I am Professor Ada.", "question", "reply 1", "reply 2"]


async def test_opening_a_page_greets_an_empty_conversation_once(
    engine: Engine, store: Store
) -> None:
    account = await store.create_account("Zoe", "hash", 0.0)
    owner = account_owner(account.id)
    persona, turns = await engine.open_conversation(owner, "direct", "Zoe")
    assert persona.id == "ada" and [t.text for t in turns] == ["Hello Zoe, I am Professor Ada."]
    _, again = await engine.open_conversation(owner, "direct", "Zoe")
    assert [t.seq for t in again] == [t.seq for t in turns]


async def test_the_context_seed_is_stable_per_conversation(
    engine: Engine, backend: Recorder
) -> None:
    await say(engine, dm("alice", "one"))
    await say(engine, dm("alice", "two"))
    await say(engine, dm("bob", "three"))
    seeds = [c.seed for c in backend.contexts if c is not None]
    assert seeds[0] == seeds[1] != seeds[2] and seeds[0]


# -- the user's own persona -----------------------------------------------------------


async def test_me_shows_sets_names_and_clears(
    engine: Engine, store: Store, backend: Recorder
) -> None:
    assert "I know you as Alice, and nothing more" in (await say(engine, dm("alice", "/me"))).text
    done = await say(engine, dm("alice", "/me A botanist from Lyon, allergic to cats."))
    assert "About you: A botanist from Lyon, allergic to cats." in done.text
    assert (await say(engine, dm("alice", "/me name  Sam "))).text == "I'll call you Sam."
    shown = (await say(engine, dm("alice", "/me"))).text
    assert "I call you Sam." in shown and "botanist" in shown
    assert "Personas call you Sam (/me)." in (await say(engine, dm("alice", "/whoami"))).text

    await say(engine, dm("alice", "hello"))
    assert backend.messages[-1].author == "Sam"
    context = backend.contexts[-1]
    assert context is not None
    assert context.user.name == "Sam" and context.user.description.startswith("A botanist")
    # {{user}} in the greeting is the chosen name too
    assert "Hello Sam, I am Professor Ada." in (await say(engine, dm("alice", "/reset"))).text

    cleared = await say(engine, dm("alice", "/me clear"))
    assert "Alice again" in cleared.text
    await say(engine, dm("alice", "again"))
    assert backend.messages[-1].author == "Alice"
    assert backend.contexts[-1] is not None and not backend.contexts[-1].user


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(f"/me name {'n' * (MAX_NAME_CHARS + 1)}", id="long-name"),
        pytest.param(f"/me {'d' * (MAX_DESCRIPTION_CHARS + 1)}", id="long-description"),
        pytest.param("/me name /reset", id="command-name"),
    ],
)
async def test_me_refuses_what_it_will_not_keep(engine: Engine, store: Store, command: str) -> None:
    await say(engine, dm("alice", "/me name Sam"))
    done = await say(engine, dm("alice", command))
    assert "Nothing was changed." in done.text
    assert (await store.get_preferences(key("alice").owner)).get("user_name") == "Sam"


async def test_me_follows_a_link_and_goes_with_forget(engine: Engine, store: Store) -> None:
    account = await store.create_account("Carol", "hash", 0.0)
    await say(engine, dm("carol", "/me name Guest Carol"))
    code = await create_link_code(store, account.id, now=time.time())
    await say(engine, dm("carol", f"/link {code}"))
    assert "Linked" in (await say(engine, dm("carol", "/link confirm"))).text
    # preferences never move on a link: the account's own persona applies
    assert "nothing more" in (await say(engine, dm("carol", "/me"))).text
    await say(engine, dm("carol", "/me name Captain Carol"))
    await say(engine, dm("carol", "/me I sail the northern seas."))
    # on another platform linked to the same account
    await store.link_identity(Identity("discord", "c1"), "carol#1", account.id, 0.0)
    shown = (await say(engine, dm("c1", "/me", platform="discord"))).text
    assert "I call you Captain Carol." in shown and "northern seas" in shown
    await say(engine, dm("c1", "/forget", platform="discord"))
    await say(engine, dm("c1", "/forget confirm", platform="discord"))
    prefs = await store.get_preferences(account_owner(account.id))
    assert "user_name" not in prefs and "user_description" not in prefs


class Held:
    """A backend that writes nothing until it is let go."""

    name = "recorder"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.go = asyncio.Event()

    async def reply(self, *args: object, **kwargs: object) -> AsyncIterator[str]:
        self.started.set()
        await self.go.wait()
        yield "late"

    async def aclose(self) -> None:
        pass


async def test_opening_a_page_does_not_wait_for_a_reply_being_written(store: Store) -> None:
    held = Held()
    engine = engine_parts.build_engine(store, personas(), ReplyGuard({held.name: held}, FAST))
    account = await store.create_account("Zoe", "hash", 0.0)
    owner = account_owner(account.id)
    incoming = Incoming("web", account.id, "Zoe", account.id, True, "hi", account_id=account.id)
    replying = asyncio.create_task(say(engine, incoming))
    await asyncio.wait_for(held.started.wait(), 5)
    opened = asyncio.create_task(engine.open_conversation(owner, "direct", "Zoe"))
    done, _ = await asyncio.wait({opened}, timeout=5)
    held.go.set()
    await replying
    assert done == {opened}, "the page waited for the reply"
    _, turns = opened.result()
    assert [t.text for t in turns] == ["hi"]  # not empty: no greeting slipped in before it
