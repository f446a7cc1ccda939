"""OfflineBackend: retrieval over the persona card, intents, variation, streaming."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.backends.base import Backend
from bot.backends.offline import OfflineBackend
from bot.backends.retrieval import Bm25Index, tokenize
from bot.messages import Role, Turn
from bot.personas import Exchange, Persona

CONTAINER = (
    "A container is a sealed box for your program, {{user}}: its own files, its own "
    "processes, the host's kernel."
)
BUILD = "Write a Dockerfile, then run `docker build -t name .` in its folder."
SLOW = "Usually it's disk I/O through a bind mount. Check `docker stats` first."
VOLUME = "Put it in a volume: `docker volume create data`, then mount it with `-v data:/data`."
REGISTRY = "A registry stores images; Docker Hub is the public default."
KERNEL = "Containers share the host's kernel, which is why they start in milliseconds."

ADA = Persona(
    id="ada",
    name="Ada",
    personality="Patient, precise, dry humour",
    examples=(
        Exchange("What is a container?", CONTAINER),
        Exchange("How do I build an image?", BUILD),
        Exchange("Why is my container slow?", SLOW),
        Exchange("Hello!", "Ahoy, {{user}}! {{char}} at your service."),
        Exchange("Who are you?", "I'm {{char}}, the ship's engineer. I keep the engines humming."),
        Exchange("How do I keep data when a container is removed?", VOLUME),
    ),
    knowledge=(
        KERNEL,
        "An image is a stack of read-only layers; a container adds one writable layer.",
        "Volumes live outside the container's writable layer, so they survive `docker rm`.",
        "Docker Compose describes several containers and their networks in one YAML file.",
        REGISTRY,
        "Health checks let Docker restart a container that stops answering.",
        "Multi-stage builds keep compilers out of the final image.",
        "{{char}} learned the trade on cargo ships before {{user}} was born.",
    ),
)

#: The same knowledge, but no example for any intent: templates answer those.
PLAIN = Persona(
    id="plain",
    name="Captain Grey",
    personality="gruff, kind",
    examples=ADA.examples[:3],
    knowledge=ADA.knowledge,
)

TOPICS = ("container", "docker", "image", "layer", "volume", "build")


def turn(seq: int, role: Role, text: str, author: str = "Bob") -> Turn:
    return Turn(seq, role, text, author, 0.0)


def say(
    text: str,
    persona: Persona = ADA,
    window: Sequence[Turn] = (),
    backend: OfflineBackend | None = None,
) -> str:
    backend = backend or OfflineBackend(seed=1)
    return backend.compose(persona, window, turn(len(window), "user", text))


async def stream(backend: Backend, persona: Persona, text: str) -> list[str]:
    return [d async for d in backend.reply(persona, [], turn(0, "user", text), {})]


def test_is_a_backend() -> None:
    backend: Backend = OfflineBackend()
    assert backend.name == "offline"


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        pytest.param("what's a container?", CONTAINER, id="paraphrase"),
        pytest.param("How can I build a docker image", BUILD, id="more-words"),
        pytest.param("my containers are so slow!", SLOW, id="statement"),
        pytest.param("how to keep my data if the container is removed", VOLUME, id="long"),
    ],
)
def test_question_close_to_an_example_gets_its_answer(question: str, answer: str) -> None:
    assert Persona.expand(ADA, answer, user="Bob") in say(question)


@pytest.mark.parametrize(
    ("question", "line"),
    [
        pytest.param("What does a registry store?", REGISTRY, id="registry"),
        pytest.param("why do containers start so fast? kernel?", KERNEL, id="kernel"),
        pytest.param("what is docker compose", "Docker Compose describes", id="compose"),
        pytest.param("tell me about multi-stage builds", "Multi-stage builds", id="builds"),
    ],
)
def test_knowledge_question_retrieves_the_line(question: str, line: str) -> None:
    assert line.lower() in say(question).lower()  # a framed line may start in lowercase


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("containers", "container", id="plural"),
        pytest.param("registries", "registry", id="ies"),
        pytest.param("building", "build", id="ing"),
        pytest.param("running", "run", id="ing-double"),
        pytest.param("stored", "store", id="ed"),
        pytest.param("Storing", "stores", id="case"),
    ],
)
def test_stemming_meets_word_forms(a: str, b: str) -> None:
    assert tokenize(a) == tokenize(b) != []


def test_stemming_lets_a_plural_find_a_singular() -> None:
    persona = Persona(id="s", name="S", knowledge=("A container holds one program.", "Cats purr."))
    assert "A container holds one program." in say("what do containers hold?", persona)


def test_tokenize_drops_stopwords_and_keeps_unicode() -> None:
    assert tokenize("What is THE café of the año?") == ["café", "año"]


def test_bm25_ranks_the_denser_match_first() -> None:
    index = Bm25Index([[(["cat", "dog"], 1.0)], [(["cat"], 1.0)], [(["fish"], 1.0)]])
    assert [doc for doc, _score in index.search({"cat": 1.0})] == [1, 0]
    # an unknown word weighs as much as the rarest known one
    assert index.coverage({"fish": 1.0, "bird": 1.0}, 2) == pytest.approx(0.5)
    assert index.search({"bird": 1.0}) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("hi there!", "Ahoy, Bob! Ada at your service.", id="greeting-example"),
        pytest.param("Good morning, Ada", "Ahoy, Bob! Ada at your service.", id="good-morning"),
        pytest.param("who are you?", "I'm Ada, the ship's engineer.", id="who-example"),
        pytest.param("What's your name?", "I'm Ada, the ship's engineer.", id="name-example"),
    ],
)
def test_intents_use_the_personas_own_examples(text: str, expected: str) -> None:
    assert say(text).startswith(expected)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("hello", ("Captain Grey", "Bob"), id="greeting"),
        pytest.param("hey, good evening!", ("Captain Grey", "Bob"), id="greeting-2"),
        pytest.param("thanks!", ("Bob",), id="thanks"),
        pytest.param("thank you so much for the help", ("Bob",), id="thanks-long"),
        pytest.param("bye", ("Bob",), id="goodbye"),
        pytest.param("ok see you later", ("Bob",), id="goodbye-2"),
        pytest.param("who are you", ("Captain Grey",), id="who"),
        pytest.param("what is your name?", ("Captain Grey",), id="name"),
        pytest.param("how are you?", ("Bob",), id="how"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_intents_without_examples_answer_in_voice(
    text: str, words: tuple[str, ...], seed: int
) -> None:
    reply = say(text, PLAIN, backend=OfflineBackend(seed=seed))
    assert any(w in reply for w in words), reply
    assert "don't know" not in reply and "{" not in reply and "<" not in reply


def test_how_are_you_uses_a_trait() -> None:
    replies = {say("how are you?", PLAIN, backend=OfflineBackend(seed=s)) for s in range(30)}
    assert any("gruff" in r for r in replies)


def test_greeting_before_a_question_answers_the_question() -> None:
    reply = say("hello! what does a registry store?")
    assert reply.startswith("Hello") and REGISTRY in reply


@pytest.mark.parametrize(
    "question",
    [
        pytest.param("What is the capital of France?", id="geography"),
        pytest.param("Can you recommend a good pasta recipe?", id="cooking"),
        pytest.param("qwertyuiop asdfgh?", id="gibberish"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_unknown_question_falls_back_to_known_topics(question: str, seed: int) -> None:
    reply = say(question, backend=OfflineBackend(seed=seed))
    assert any(t in reply.lower() for t in TOPICS), reply
    assert all(e.char not in reply for e in ADA.examples)
    assert all(k not in reply for k in ADA.knowledge)


def test_unknown_fallback_varies() -> None:
    replies = {
        say("What is the capital of France?", backend=OfflineBackend(seed=s)) for s in range(20)
    }
    assert len(replies) >= 3


def test_persona_with_an_empty_card_still_answers() -> None:
    persona = Persona(id="empty", name="Echo")
    for text in ("hi", "what is a container?", "", "why?"):
        assert say(text, persona)


def test_macros_are_expanded() -> None:
    assert "for your program, Bob:" in say("what is a container?")
    assert say("who are you").startswith("I'm Ada,")
    reply = say("where did Ada learn the trade? cargo ships?")
    assert "Ada learned the trade on cargo ships before Bob was born." in reply


def test_answers_that_name_the_user_name_each_user_from_one_backend() -> None:
    """A card's answers without macros are worked out once per card; the ones that
    name the user (or the persona in any spelling) are still expanded for each user."""
    backend = OfflineBackend(seed=1)
    for user in ("Bob", "Zoë", "Bob"):
        message = turn(0, "user", "what is a container?", user)
        assert f"for your program, {user}:" in backend.compose(ADA, [], message)
    shouting = Persona(id="cap", name="Cap", knowledge=("<CHAR> sails the <BOT>-built ships.",))
    assert "Cap sails the Cap-built ships." in say("who sails the ships?", shouting)
    assert REGISTRY in say("what does a registry store?", backend=backend)


def test_a_changed_card_is_reindexed() -> None:
    backend = OfflineBackend(seed=1)
    assert REGISTRY in say("what does a registry store?", backend=backend)
    changed = Persona(id="ada", name="Ada", knowledge=("A registry is a ledger of ships.",))
    assert "ledger of ships" in say("what does a registry store?", changed, backend=backend)


def test_a_user_without_a_name_is_a_friend() -> None:
    reply = OfflineBackend(seed=1).compose(ADA, [], turn(0, "user", "what is a container?", ""))
    assert "for your program, friend:" in reply


def test_same_seed_gives_the_same_replies() -> None:
    questions = ["hi", "what is a container?", "what's the capital of France?", "thanks"]
    first, second = OfflineBackend(seed=42), OfflineBackend(seed=42)
    assert [say(q, backend=first) for q in questions] == [say(q, backend=second) for q in questions]


def test_unseeded_backends_still_answer_the_question() -> None:
    assert Persona.expand(ADA, CONTAINER, "Bob") in say(
        "what's a container?", backend=OfflineBackend()
    )


@pytest.mark.parametrize(
    "question",
    [
        pytest.param("What is a container?", id="example"),
        pytest.param("What does a registry store?", id="knowledge"),
        pytest.param("hi", id="greeting"),
        pytest.param("thanks", id="thanks"),
        pytest.param("What is the capital of France?", id="unknown"),
        pytest.param("", id="empty"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_asking_again_does_not_repeat_the_last_reply(question: str, seed: int) -> None:
    backend = OfflineBackend(seed=seed)
    first = say(question, backend=backend)
    window = [turn(0, "user", question), turn(1, "assistant", first, "Ada")]
    second = say(question, window=window, backend=backend)
    assert second != first


def test_asking_again_gives_a_related_answer() -> None:
    backend = OfflineBackend(seed=5)
    first = say("What is a container?", backend=backend)
    window = [turn(0, "user", "What is a container?"), turn(1, "assistant", first, "Ada")]
    second = say("What is a container?", window=window, backend=backend)
    assert "container" in second.lower()


@pytest.mark.parametrize(
    "follow_up",
    [
        pytest.param("tell me more", id="more"),
        pytest.param("why?", id="why"),
        pytest.param("and then?", id="and-then"),
    ],
)
def test_short_follow_up_uses_the_previous_question(follow_up: str) -> None:
    backend = OfflineBackend(seed=9)
    first = say("what does a registry store?", backend=backend)
    window = [turn(0, "user", "what does a registry store?"), turn(1, "assistant", first, "Ada")]
    second = say(follow_up, window=window, backend=backend)
    assert second != first
    assert "don't know" not in second and "beyond me" not in second


async def test_paced_deltas_are_words_that_join_to_the_whole_reply() -> None:
    backend = OfflineBackend(seed=3, word_delay=0.0001)
    deltas = await stream(backend, ADA, "what is a container?")
    assert len(deltas) > 5
    assert all(d.strip() and " " not in d.strip() for d in deltas)
    assert "".join(deltas) == backend.compose(ADA, [], turn(0, "user", "what is a container?"))


async def test_unpaced_the_reply_is_one_delta() -> None:
    """Without a delay the words would all arrive at once: one delta, not one a word."""
    backend = OfflineBackend(seed=3)
    deltas = await stream(backend, ADA, "what is a container?")
    assert deltas == [backend.compose(ADA, [], turn(0, "user", "what is a container?"))]


async def test_word_delay_paces_the_stream() -> None:
    backend = OfflineBackend(seed=3, word_delay=0.001)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deltas = await stream(backend, ADA, "what is a container?")
    assert loop.time() - started >= 0.001 * (len(deltas) - 1)


async def test_state_is_left_alone_and_aclose_is_harmless() -> None:
    backend = OfflineBackend(seed=3)
    state = {"kept": 1}
    _ = [d async for d in backend.reply(ADA, [], turn(0, "user", "hi"), state)]
    assert state == {"kept": 1}
    await backend.aclose()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   \n\t ", id="whitespace"),
        pytest.param("?!...", id="punctuation"),
        pytest.param("😀😀🎉", id="emoji"),
        pytest.param("👍", id="thumbs-up"),
    ],
)
async def test_nothing_to_read_gets_a_nudge(text: str) -> None:
    deltas = await stream(OfflineBackend(seed=1), ADA, text)
    reply = "".join(deltas)
    assert "Bob" in reply or "Ada" in reply


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("container " * 10_000, id="100k-words"),
        pytest.param("x" * 100_000, id="100k-one-word"),
        pytest.param("the " * 25_000, id="100k-stopwords"),
        pytest.param("hi " * 33_000, id="100k-greetings"),
        pytest.param("\u200b\u0301\ufeff" * 1000, id="invisible"),
        pytest.param("מה זה קונטיינר؟ 容器是什么 Ῥόδος", id="scripts"),
        pytest.param("\ud800 lone surrogate", id="surrogate"),
        pytest.param("{{char}} <USER> {{user}}", id="macros-in-input"),
    ],
)
def test_no_crash_on_odd_input(text: str) -> None:
    assert say(text).strip()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_gets_a_non_empty_reply(text: str) -> None:
    backend = OfflineBackend(seed=0)
    deltas = asyncio.run(stream(backend, ADA, text))
    assert deltas and "".join(deltas).strip()


async def test_retry_of_the_same_turn_is_phrased_anew() -> None:
    persona = Persona(
        id="t",
        name="Tess",
        examples=(Exchange("What is Docker?", "Docker packages apps into containers."),),
        knowledge=tuple(f"Docker fact number {n} about containers and images." for n in range(8)),
    )
    backend = OfflineBackend(seed=3)
    message = Turn(1, "user", "Tell me about docker", "Sam", 1.0)
    replies = set()
    for _ in range(4):
        replies.add("".join([d async for d in backend.reply(persona, [], message, {})]))
    assert len(replies) > 1
