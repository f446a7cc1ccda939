"""End to end: cards imported with ``personas import``, a conversation through the real
engine and OpenAIBackend, and the exact ``messages`` a fake OpenAI-compatible server
receives."""

from __future__ import annotations

import argparse
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import persona_cli
from bot.app_settings import load_settings
from bot.backends.openai import OpenAIBackend
from bot.backends.prompt import DEFAULT_SYSTEM_PROMPT, PromptOptions
from bot.messages import ReplyKind
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from tests.support.backend_harness import build_engine
from tests.support.engine import dm, reply
from tests.support.openai_server import FakeOpenAI

CARDS = Path(__file__).resolve().parents[1] / "personas" / "cards"


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def import_cards(tmp_path: Path, cards: dict[str, str | None]) -> PersonaLibrary:
    """``personabridge personas import`` of each card (with its ``--backend``)."""
    directory = tmp_path / "personas"
    config = tmp_path / "none.toml"
    config.write_text("")
    environ = {
        "PERSONABRIDGE_PERSONAS_DIR": str(directory),
        "PERSONABRIDGE_DEFAULT_BACKEND": "openai",
        "PERSONABRIDGE_CONFIG": str(config),
    }
    settings = load_settings(environ, use_dotenv=False)
    for name, backend in cards.items():
        args = argparse.Namespace(
            action="import", file=CARDS / name, persona_id=None, backend=backend, force=False
        )
        assert persona_cli.run(settings, args) == 0
    return PersonaLibrary.from_directory(directory, default_backend=settings.default_backend)


async def test_the_exact_messages_of_an_imported_card(server: FakeOpenAI, tmp_path: Path) -> None:
    library = import_cards(tmp_path, {"lighthouse_v3.json": "openai", "ferryman_v2.json": None})
    iris = library.get("captain-iris-vale")  # its card says offline; --backend openai wins
    assert (iris.backend, library.get("old-tom").backend) == ("openai", "openai")  # the default
    seed = 3
    backend = OpenAIBackend(
        base_url=server.url,
        model="m",
        prompt=PromptOptions(post_history="Reply in under 80 words.", rng=random.Random(seed)),
    )
    async with MemoryStore() as store:
        engine = build_engine(store, [backend], [iris])
        started = await reply(engine, dm("sam", "/start"))  # stores the greeting, shows it
        assert started.text.startswith("*Iris lowers the lantern.* Welcome to the rock, Sam.")
        first = await reply(engine, dm("sam", "Is the lamp lit at night?"))
        assert first.kind is ReplyKind.CHAT
        await reply(engine, dm("sam", "A Storm comes."))
    await backend.aclose()

    humour = random.Random(seed).choice(["dry", "wry"])
    main = DEFAULT_SYSTEM_PROMPT.replace("{{char}}", "Iris").replace("{{user}}", "Sam")
    greeting = "*Iris lowers the lantern.* Welcome to the rock, Sam."
    system = "\n\n".join(
        [
            f"{main} You are Iris, never an AI.",
            # the entries placed before the character, in insertion order, one per line
            "Gull Rock is three miles out, with 112 steps to the lamp room.\n"
            "The lamp turns every ten seconds.",
            "Iris keeps the lighthouse on Gull Rock. Iris never leaves it.",
            f"Iris's personality: calm, watchful, {humour} humour",
            "Scenario: Sam rows out to the lighthouse at dusk.",
        ]
    )
    examples = [
        {"role": "system", "content": "[Example Chat]"},
        {
            "role": "system",
            "content": "*polishes the lens* Every night, rain or shine.",
            "name": "example_assistant",
        },
        {"role": "system", "content": "[Example Chat]"},
        {"role": "system", "content": "What do you do here?", "name": "example_user"},
        {
            "role": "system",
            "content": "I keep the light turning.\nIt turns every ten seconds.",
            "name": "example_assistant",
        },
        {"role": "system", "content": "[Example Chat]"},
        {"role": "system", "content": "Any advice?", "name": "example_user"},
        {"role": "system", "content": "Keep the lamp trimmed, Sam.", "name": "example_assistant"},
        {"role": "system", "content": "[Start a new Chat]"},
    ]
    assert server.chat_requests[-1]["messages"] == [
        {"role": "system", "content": system},
        *examples,
        {"role": "assistant", "content": greeting},
        {"role": "user", "content": "Is the lamp lit at night?"},
        {"role": "system", "content": "Iris speaks in short sentences."},
        {"role": "assistant", "content": "You said: Is the lamp lit at night?"},
        {"role": "user", "content": "A Storm comes."},
        {"role": "assistant", "content": "Thunder rolls over Gull Rock."},
        {"role": "system", "content": "Reply in under 80 words.\nStay in the lighthouse."},
    ]
    # The first request: "lamp" and "night" were there, but no "Storm" yet.
    first_request = server.chat_requests[0]["messages"]
    assert first_request[0] == {"role": "system", "content": system}
    assert "Thunder" not in str(first_request)
