"""Prompt assembly as SillyTavern does it for chat-completion APIs: the order of the
parts, {{original}}, the user's persona, example messages pruned first, the greeting
as the first assistant turn, depth injections, post-history instructions last."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.backends.base import ReplyContext
from bot.backends.prompt import DEFAULT_SYSTEM_PROMPT, PromptOptions, chat_messages
from bot.card_model import DepthPrompt, Lorebook, LoreEntry
from bot.messages import Turn, UserPersona
from bot.personas import Persona, load_card

CARDS = Path(__file__).resolve().parents[1] / "personas" / "cards"
OPTIONS = PromptOptions(rng=random.Random(7), clock=lambda: datetime(2026, 12, 6, 9, 30))


def turn(seq: int, role: str, text: str, author: str = "Sam") -> Turn:
    return Turn(seq, role, text, author, float(seq))  # type: ignore[arg-type]


def pairs(messages: list[Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


PERSONA = Persona(
    id="nell",
    name="Keeper Nell",
    nickname="Nell",
    greeting="Welcome, {{user}}.",
    description="{{char}} keeps the light.",
    personality="calm",
    scenario="{{user}} visits.",
    system_prompt="{{original}} Be {{char}}.",
    post_history_instructions="{{original}} Short answers.",
    mes_example="",
    lorebook=Lorebook(
        entries=(
            LoreEntry(keys=("lamp",), content="Before: the lamp.", position="before_char"),
            LoreEntry(keys=("lamp",), content="After: the lamp.", position="after_char"),
            LoreEntry(keys=("rock",), content="@@depth 1\nThe rock is cold."),
        )
    ),
    depth_prompt=DepthPrompt("Nell is tired.", depth=0, role="system"),
)


def test_the_order_of_the_parts() -> None:
    window = [turn(1, "assistant", "Welcome, Sam."), turn(2, "user", "The rock?")]
    message = turn(3, "user", "And the lamp?")
    context = ReplyContext(user=UserPersona("Sam", "{{user}} is a sailor who fears {{char}}."))
    options = PromptOptions(post_history="Stay in character.", rng=random.Random(1))
    messages = chat_messages(
        PERSONA, window, message, "Sam arrived.", context=context, options=options
    )
    main = DEFAULT_SYSTEM_PROMPT.replace("{{char}}", "Nell").replace("{{user}}", "Sam")
    assert pairs(messages) == [
        (
            "system",
            "\n\n".join(
                [
                    f"{main} Be Nell.",
                    "Before: the lamp.",
                    "Sam is a sailor who fears Nell.",
                    "Nell keeps the light.",
                    "Nell's personality: calm",
                    "Scenario: Sam visits.",
                    "After: the lamp.",
                    "Summary of the conversation so far:\nSam arrived.",
                ]
            ),
        ),
        ("assistant", "Welcome, Sam."),
        ("system", "The rock is cold."),  # depth 1: before the last message
        ("user", "The rock?\n\nAnd the lamp?"),
        ("system", "Nell is tired."),  # the character's note at depth 0
        ("system", "Stay in character. Short answers."),
    ]


def test_the_card_system_prompt_replaces_the_main_prompt() -> None:
    persona = Persona(id="x", name="X", system_prompt="Only {{char}}.")
    options = PromptOptions(main_prompt="Default main.")
    [system, _] = chat_messages(persona, [], turn(1, "user", "hi"), options=options)
    assert system["content"] == "Only X."
    [system, _] = chat_messages(
        Persona(id="x", name="X"), [], turn(1, "user", "hi"), options=options
    )
    assert system["content"] == "Default main."


def test_no_post_history_message_when_there_is_none() -> None:
    messages = chat_messages(Persona(id="x", name="X"), [], turn(1, "user", "hi"))
    assert [m["role"] for m in messages] == ["system", "user"]


def test_user_text_is_never_expanded() -> None:
    text = "{{char}} <bot> {{random:a,b}} {{// x}}"
    messages = chat_messages(PERSONA, [turn(1, "assistant", text)], turn(2, "user", text))
    assert [m["content"] for m in messages if m["role"] in ("user", "assistant")] == [text, text]


EXAMPLES = (
    "<START>\n{{char}}: *polishes the lens*\n"
    "<START>\nYou: What do you do?\n{{char}}: I keep the light.\n"
    "<START>\n<USER>: Advice?\n<BOT>: Trim the lamp, {{user}}."
)


def test_example_dialogue_is_sent_as_example_messages() -> None:
    persona = load_card_text(EXAMPLES)
    messages = chat_messages(persona, [], turn(1, "user", "hi"))
    examples = [(m["role"], m.get("name"), m["content"]) for m in messages[1:-1]]
    assert examples == [
        ("system", None, "[Example Chat]"),
        ("system", "example_assistant", "*polishes the lens*"),
        ("system", None, "[Example Chat]"),
        ("system", "example_user", "What do you do?"),
        ("system", "example_assistant", "I keep the light."),
        ("system", None, "[Example Chat]"),
        ("system", "example_user", "Advice?"),
        ("system", "example_assistant", "Trim the lamp, Sam."),
        ("system", None, "[Start a new Chat]"),
    ]


def test_examples_give_way_first_whole_blocks() -> None:
    persona = load_card_text(EXAMPLES)
    full = chat_messages(persona, [], turn(1, "user", "hi"))
    needed = sum(len(m["content"]) // 4 + 1 for m in full)
    tight = PromptOptions(context_tokens=needed - 8, reply_tokens=0)
    messages = chat_messages(persona, [], turn(1, "user", "hi"), options=tight)
    names = [m.get("name") for m in messages]
    assert names.count("example_user") == 1 and "Trim the lamp, Sam." not in str(messages)
    none_fit = PromptOptions(context_tokens=20, reply_tokens=0)
    messages = chat_messages(persona, [], turn(1, "user", "hi"), options=none_fit)
    assert pairs(messages)[1:] == [("user", "hi")]  # no examples, but the chat is whole


def test_pick_is_stable_within_a_conversation() -> None:
    persona = Persona(id="x", name="X", description="{{pick:a,b,c,d,e,f,g,h}}")
    first = chat_messages(persona, [], turn(1, "user", "hi"))[0]["content"]
    again = chat_messages(persona, [turn(1, "user", "hi")], turn(2, "user", "yo"))[0]["content"]
    assert first == again


def test_a_real_card_every_part_in_place() -> None:
    persona = load_card(CARDS / "lighthouse_v3.json")
    window = [turn(1, "assistant", "*Iris lowers the lantern.* Welcome to the rock, Sam.")]
    message = turn(2, "user", "Is the lamp lit at night? A Storm comes.")
    messages = chat_messages(persona, window, message, options=OPTIONS)
    system = messages[0]["content"]
    assert system.startswith(
        DEFAULT_SYSTEM_PROMPT.replace("{{char}}", "Iris").replace("{{user}}", "Sam")
    )
    assert "You are Iris, never an AI." in system
    assert system.index("Gull Rock is three miles out") < system.index("The lamp turns every")
    assert system.index("The lamp turns every") < system.index("Iris keeps the lighthouse")
    assert "Iris never leaves it." in system  # <bot>
    assert "Keepers answer" not in system  # the regex entry did not match
    assert "Disabled entries" not in system and "@@" not in str(messages)
    history = pairs(
        messages[messages.index({"role": "system", "content": "[Start a new Chat]"}) + 1 :]
    )
    assert history == [
        ("system", "Iris speaks in short sentences."),  # depth_prompt at depth 2 (of 2)
        ("assistant", window[0].text),  # the greeting opens the chat
        ("user", message.text),
        ("assistant", "Thunder rolls over Gull Rock."),  # @@depth 0, @@role assistant
        history[-1],
    ]
    assert history[-1][0] == "system" and history[-1][1].endswith("Stay in the lighthouse.")


def load_card_text(mes_example: str) -> Persona:
    from bot.cards import read_card
    from bot.persona_model import PersonaOptions, build_persona

    card = read_card({"name": "Keeper Nell", "mes_example": mes_example}, "x.json")
    return build_persona(card, persona_id="nell", source="x.json", options=PersonaOptions())


def test_is_greeting_knows_which_greeting_opened_the_chat() -> None:
    from bot.greetings import greeting_text

    persona = Persona(
        id="x",
        name="X",
        greeting="Hello {{user}}, {{random:a,b,c}}.",
        alternate_greetings=("Storm's coming, {{user}}.",),
        lorebook=Lorebook(
            entries=(LoreEntry(content="@@is_greeting 1\nThe storm scene.", constant=True),)
        ),
    )
    context = ReplyContext(seed="conv")

    def system_after(number: int) -> str:
        opening = turn(1, "assistant", greeting_text(persona, "Sam", number, seed="conv"))
        return chat_messages(persona, [opening], turn(2, "user", "hi"), context=context)[0][
            "content"
        ]

    assert "The storm scene." in system_after(2)
    assert "The storm scene." not in system_after(1)
