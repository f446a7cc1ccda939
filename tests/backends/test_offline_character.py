"""The offline brain as a character: exchanges from transcripts and the lorebook, keys
that count, no echo, honest "I don't know", /retry that differs, and questions about
the conversation itself. The card is written here (modelled on SillyTavern's Seraphina:
a role-play card whose lorebook entries are small transcripts)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from bot.backends.base import ReplyContext
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.card_model import Lorebook, LoreEntry
from bot.engine_parts import build_engine
from bot.messages import Incoming, ReplyKind, Role, TextDelta, Turn, UserPersona
from bot.personas import Exchange, Persona, PersonaLibrary
from bot.store.memory import MemoryStore

ELDORIA = '*Lyra smiles.* "Eldoria is this whole forest, and I am its warden."'
GLADE = '*Lyra gestures around.* "This glade is warded: no beast may enter."'
SHADOW = "The Shadowfangs are corrupted wolves that hunt at night."
POWERS_1 = '*Lyra lifts a hand; petals swirl.* "Healing, mostly, and wards."'
POWERS_2 = '*Lyra hums.* "I can mend wounds and calm a restless mind."'
TRAITS = '*Lyra considers.* "Patient, I hope. Protective, certainly."'

LYRA = Persona(
    id="lyra",
    name="Lyra",
    greeting='*You wake in a glade.* "Ah, you\'re awake, {{user}}."',
    description=(
        '[Lyra\'s Personality= "gentle", "protective", "watchful"]\n'
        f'<START>\n{{{{user}}}}: "Describe your traits?"\n{{{{char}}}}: {TRAITS}'
    ),
    lorebook=Lorebook(
        entries=(
            LoreEntry(
                keys=("eldoria", "woods"),
                content=f'{{{{user}}}}: "What is Eldoria?"\n{{{{char}}}}: {ELDORIA}',
            ),
            LoreEntry(
                keys=("glade", "haven"),
                content=f'@@depth 0\n{{{{user}}}}: "What is the glade?"\n{{{{char}}}}: {GLADE}',
            ),
            LoreEntry(keys=("beast", "monster", "wolves"), content=SHADOW),
            LoreEntry(
                keys=("power", "magic"),
                content=(
                    f'{{{{user}}}}: "What are your powers?"\n{{{{char}}}}: {POWERS_1}\n'
                    f'{{{{user}}}}: "What else can your magic do?"\n{{{{char}}}}: {POWERS_2}'
                ),
            ),
            LoreEntry(keys=("secret",), content="Lyra once was human.", enabled=False),
        )
    ),
)

#: A plain card: its knowledge holds a line that is only a question.
PLAIN = Persona(
    id="plain",
    name="Professor Ada",
    personality="Patient, precise",
    examples=(Exchange("What is a container?", "A sealed box for your program."),),
    knowledge=("What is Eldoria?", "Docker images are stacks of layers."),
)


def turn(seq: int, role: Role, text: str, author: str = "Sam") -> Turn:
    return Turn(seq, role, text, author, float(seq))


def ask(
    text: str,
    persona: Persona = LYRA,
    window: Sequence[Turn] = (),
    *,
    seed: int = 1,
    context: ReplyContext | None = None,
) -> str:
    backend = OfflineBackend(seed=seed)
    return backend.compose(persona, window, turn(len(window) + 1, "user", text), context=context)


LABEL = re.compile(r"(?:^|\n)\s*(?:\{\{\s*(?:user|char)\s*\}\}|<\w+>|Sam|Lyra|You|User)\s*:", re.I)

# -- exchanges, keys, labels ----------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        pytest.param("What is Eldoria?", ELDORIA, id="lorebook-transcript"),
        pytest.param("tell me about eldoria", ELDORIA, id="reworded"),
        pytest.param("What's the glade?", GLADE, id="decorated-entry"),
        pytest.param("Describe your traits?", TRAITS, id="transcript-in-description"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_transcript_answers_with_the_characters_line(
    question: str, answer: str, seed: int
) -> None:
    said = ask(question, seed=seed)
    assert answer in said
    assert not LABEL.search(said), "no speaker label is ever shown"
    assert "@@" not in said and "{{" not in said


def test_lorebook_keys_count_in_matching() -> None:
    # "beasts" is only in the entry's keys (the text says "wolves")
    for seed in range(4):
        assert "shadowfangs are corrupted wolves" in ask("Are there beasts?", seed=seed).lower()


def test_a_disabled_entry_is_never_said() -> None:
    for seed in range(10):
        assert "human" not in ask("Tell me your secret", seed=seed)


@pytest.mark.parametrize("seed", range(8))
def test_the_users_own_line_is_never_said_back(seed: int) -> None:
    said = ask("What is Eldoria?", PLAIN, seed=seed)
    assert "what is eldoria" not in said.lower()


# -- honesty --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("question", ["What is 2+2?", "What is quantum chromodynamics?"])
def test_an_unknown_question_gets_an_honest_in_character_answer(question: str, seed: int) -> None:
    said = ask(question, seed=seed)
    assert re.search(r"don't know|beyond me|stumped|not something I know", said, re.I), said
    for line in (ELDORIA, GLADE, SHADOW, POWERS_1, POWERS_2, TRAITS):
        assert line not in said, "nothing unrelated from the card"
    assert said.startswith("*Lyra "), "a role-play card keeps acting in *asterisks*"


def test_an_unknown_subject_is_named_in_the_users_words() -> None:
    for seed in range(6):
        said = ask("What is quantum chromodynamics?", seed=seed)
        assert "quantum chromodynamics" in said.lower()


# -- /retry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        pytest.param("What are your powers?", id="two-answers"),
        pytest.param("What is Eldoria?", id="one-answer"),
        pytest.param("What is 2+2?", id="unknown"),
        pytest.param("hello", id="greeting"),
        pytest.param("what did I just ask?", id="recall"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_retry_gives_a_different_reply_each_time(question: str, seed: int) -> None:
    window = [turn(1, "user", "Hello there"), turn(2, "assistant", "Hello, Sam.")]
    said: list[str] = []
    for _ in range(3):
        context = ReplyContext(earlier_replies=tuple(said))
        said.append(ask(question, window=window, seed=seed, context=context))
    assert len(set(said)) == 3, said


def test_retry_prefers_another_answer_to_rewording() -> None:
    first = ask("What are your powers?")
    again = ask("What are your powers?", context=ReplyContext(earlier_replies=(first,)))
    assert {POWERS_1 in first, POWERS_1 in again} == {True, False}


async def test_the_engines_retry_gives_a_new_reply() -> None:
    backend = OfflineBackend(seed=5)
    async with MemoryStore() as store:
        engine = build_engine(
            store,
            PersonaLibrary([LYRA]),
            ReplyGuard({"offline": backend}, GuardPolicy(retries=0)),
        )
        texts = []
        for text in ("What are your powers?", "/retry", "/retry"):
            incoming = Incoming("telegram", "1", "Sam", "1", True, text)
            events = [e async for e in engine.handle(incoming)]
            done = events[-1]
            assert not isinstance(done, TextDelta) and done.kind is ReplyKind.CHAT
            texts.append(done.text)
    assert len(set(texts)) == 3, texts


# -- the conversation itself ---------------------------------------------------------

HISTORY = [
    turn(1, "assistant", "Ah, you're awake, Sam."),
    turn(2, "user", "Where am I?"),
    turn(3, "assistant", "In my glade."),
    turn(4, "user", "What is Eldoria?"),
    turn(5, "assistant", ELDORIA),
]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what did I just ask?", 'You asked me: "What is Eldoria?"'),
        ("What did I just ask you?", 'You asked me: "What is Eldoria?"'),
        ("what was my last question", 'You asked me: "What is Eldoria?"'),
        ("What did you just say?", f'I said: "{ELDORIA}"'),
        ("what was the first thing I asked?", 'The first thing you said was: "Where am I?"'),
    ],
)
def test_questions_about_the_conversation_are_answered_from_the_window(
    question: str, expected: str
) -> None:
    assert ask(question, window=HISTORY) == expected


def test_at_the_start_there_is_nothing_to_recall() -> None:
    assert "first message" in ask("what did I just ask?")


def test_a_recalled_line_is_quoted_as_typed_never_expanded() -> None:
    window = [turn(1, "user", "Is {{char}} <USER>?"), turn(2, "assistant", "Hm.")]
    assert ask("what did I just ask?", window=window) == 'You asked me: "Is {{char}} <USER>?"'


def test_whats_my_name_uses_the_users_own_persona() -> None:
    assert ask("what's my name?").startswith("You're Sam")
    me = UserPersona("Robin", "A ranger of the northern woods.")
    said = ask("Who am I?", context=ReplyContext(user=me))
    assert said.startswith("You're Robin.") and "ranger of the northern woods" in said


def test_who_am_i_talking_to_is_still_about_the_character() -> None:
    assert "Lyra" in ask("who am I talking to?")


def test_replies_are_deterministic_for_a_seed() -> None:
    for question in ("What is Eldoria?", "What is 2+2?", "hello", "what did I just ask?"):
        assert ask(question, seed=9) == ask(question, seed=9)
