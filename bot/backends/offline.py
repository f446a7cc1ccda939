"""The offline persona brain: retrieval over the persona's own card, no network, no key.

A message is answered by the first of these that fits:

1. a question about the conversation itself ("what did I just ask?", "what's my
   name?"), answered from the window and the user's own persona
   (:mod:`bot.backends.offline_recall`);
2. an intent (greeting, thanks, goodbye, "who are you", "how are you", nothing to
   read), in the persona's own words when one of its examples says it, else a template
   with its name and a trait from its personality;
3. the best BM25 match among its exchanges (example dialogue, transcripts in the
   description and the lorebook: the user's line is matched, the character's line
   answers) and facts (knowledge lines, other lorebook entries, framed in its voice),
   where a lorebook entry's keys count as words of it
   (:mod:`bot.backends.offline_sources`), varied when it was the last reply already;
4. an honest, in-character "I don't know that" (in the card's manner: its actions in
   ``*asterisks*`` when its answers have them) that points at what it does know.

It never answers with the user's own words, nor with a speaker label. A ``/retry``
(the engine passes the replies the message already had) gets a different reply
whenever more than one is possible. Replies are deterministic under a seed: each takes
its own ``random.Random`` from the seed, the persona, the message, the window's length
and how often this stored turn was answered before, so scheduling cannot change it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import secrets
import zlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

from bot.backends.base import ReplyContext
from bot.backends.offline_recall import answer_recall, recall_question
from bot.backends.offline_sources import Source, card_sources
from bot.backends.retrieval import STOPWORDS, WORD, Bm25Index, stem, terms, tokenize, wordset
from bot.messages import AttachmentKind, Turn
from bot.personas import Persona
from bot.store.base import BackendState

MAX_CHARS = 2000  # a longer message is read from its start: enough to know what it asks
_REMEMBERED_TURNS = 4096
MIN_SCORE = 0.2  # below this, nothing in the card really matches
MIN_COVERAGE = 0.3  # share of the question's weight a document must cover to answer it
RELATED = 0.35  # documents within this share of the best score still answer
CHAR_WEIGHT = 0.3  # an example's char line matches weakly; its user line strongly
KEY_WEIGHT = 1.0  # a lorebook entry's keys are what it is about: they match strongly
RETRY_TRIES = 6  # fresh dice a /retry gets before its reply is reworded instead
CONTEXT_WEIGHT = 0.5  # "why?" borrows the previous question's terms at this weight
COMBINE_CHANCE = 0.3  # how often an example answer is followed by a related fact
RECENT = 3  # turns of each side looked back at, for repeats and for "why?"

_MACRO = re.compile(r"\{\{[^{}]*\}\}|<(?:BOT|USER)>", re.IGNORECASE)
_DELTA = re.compile(r"\s*\S+\s*")
_FIRST_WORD = re.compile(r"[^\W_]+")
_OPENER = re.compile(r"([A-Z][\w']*(?: [\w']+)?),\s")

# Intents, matched on the message's lowercase words joined by single spaces.
_INTENTS = {
    "who": r"who (?:are|r) (?:you|u)|who is this|who s this|what (?:s|is) your name|whats "
    r"your name|your name|what are you|introduce yourself|tell me about yourself|who am i "
    r"(?:talking|speaking) (?:to|with)|what can you do|what do you know|what can you tell me",
    "how": r"how (?:are|r) (?:you|u)(?: doing| today)?|how (?:s|is) it going|how are things|"
    r"how do you do|how have you been|how (?:s|is) life|(?:are )?you ok|are you well",
    "thanks": r"thanks?(?: you)?(?: so much| very much)?|thank u|thx|ty|tysm|cheers|many "
    r"thanks|much appreciated|(?:i )?appreciate it",
    "goodbye": r"bye(?: bye)?|goodbye|good bye|good ?night|see (?:you|ya)(?: later| soon)?|"
    r"cya|farewell|take care|(?:i )?(?:gotta|got to|have to|must) go|talk (?:to you )?later|"
    r"ttyl|later",
    "greeting": r"hi|hello|hey|heya|hiya|howdy|yo|hallo|hola|bonjour|salut|greetings|good "
    r"(?:morning|afternoon|evening|day)|morning|evening|what s up|whats up|sup",
}
_INTENT = re.compile("|".join(rf"(?P<{k}>{v})\b" for k, v in _INTENTS.items()))
_PRIORITY = ("who", "how", "thanks", "goodbye", "greeting")
_FILLER = wordset(
    "there again much lot lots everyone everybody guys friend buddy mate dear bot sir "
    "madam miss help ah um uh haha lol hehe though anyway btw"
)
_ANAPHOR = re.compile(
    r"(?:why|how|how so|how come|really|and|and then|then what|what then|what next|tell me "
    r"more|more|go on|continue|say more|what about it|such as|like what|for (?:example|"
    r"instance)|example|elaborate|what do you mean|what else|anything else|is that so)\b"
)
_PRONOUNS = wordset("it that this they them those these there he she him her its")
_GENERIC = frozenset(
    map(
        stem,
        wordset(
            "use make made come give take put see look work run keep kind sort many one "
            "two new old good bad best better great time day people stuff always never often "
            "usually sometimes because different part first last start stop find every small "
            "big low high little long short less hour minute week year lot"
        ),
    )
)
#: Words a description uses to describe, not topics: "assists ... provides ...".
_DESCRIBING = wordset(
    "provides assists includes contains related questions answers helps gives makes "
    "always often never loves likes wants speaks talks responds replies within without "
    "toward towards around against across among"
)
_NOT_SIGNATURE = wordset("yes no not sure so but and because if when then first also")

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "greeting": (
        "Hello, <USER>! <BOT> here. What's on your mind?",
        "Hi <USER>! <BOT> at your service. Ask me about {topics}, if you like.",
        "Hey there, <USER>. <BOT> here — {trait} as ever. What shall we talk about?",
    ),
    "thanks": (
        "You're welcome, <USER>!",
        "Any time, <USER>. Anything else you'd like to know?",
        "Glad I could help, <USER>.",
    ),
    "goodbye": (
        "Goodbye, <USER>! Come back any time.",
        "Take care, <USER>. <BOT> will be here.",
        "See you soon, <USER>!",
    ),
    "who": (
        "I'm <BOT> — {trait}, or so they tell me. Ask me about {topics}.",
        "The name's <BOT>. I know a thing or two about {topics}.",
        "I'm <BOT>. Ask me anything about {topics}.",
        "I'm <BOT>. What would you like to know, <USER>?",
    ),
    "how": (
        "I'm well, thank you, <USER> — {trait} as ever. And you?",
        "Doing fine, thanks for asking, <USER>! How about you?",
        "Not bad at all. What can <BOT> do for you, <USER>?",
    ),
    "nudge": (
        "Hm? Say a few words, <USER> — I'm listening.",
        "I'm not sure what you mean, <USER>. Try asking me about {topics}.",
        "<BOT> is all ears, <USER>. What's on your mind?",
    ),
    "unknown": (
        "I don't know that one, <USER>, I'm afraid. I'm better on {topics}.",
        "That's beyond me, I'm afraid. Ask me about {topics} instead?",
        "Not something I know much about, <USER>. But {topics}? Happy to help there.",
        "You've stumped me there. I can tell you about {topics}, though.",
        "I don't know that one, <USER>, I'm afraid.",
        "That one's beyond me, <USER>. Try me with something else?",
        "{subject}? I don't know, <USER>, and I'd rather say so than guess.",
        "I'm afraid I don't know about {subject}, <USER>. I'm better on {topics}.",
        "{subject}? That's beyond me, I'm afraid. Ask me about {topics} instead?",
        "I won't guess about {subject}, <USER>: I don't know. Ask me about {topics}.",
        "{Trait} as I am, I won't pretend: I don't know about {subject}.",
    ),
}
#: How a persona whose answers act in *asterisks* shows it is thinking.
_ACTIONS = (
    "*<BOT> pauses, thinking it over.*",
    "*<BOT> considers the question for a moment.*",
    "*<BOT> frowns thoughtfully.*",
)
#: "what is X" / "who was X" / "tell me about X": the X an honest "I don't know" names.
_SUBJECT = re.compile(
    r"^(?:(?:so|and|but|hey|ok|okay)\W+)*(?:what|who|where)(?:'s|\s+(?:is|are|was|were))\s+"
    r"(?:a\s+|an\s+)?(?P<s>[^?!.\n]{1,40}?)\s*[?!.]*$|^(?:tell me|what do you know) about\s+"
    r"(?P<t>[^?!.\n]{1,40}?)\s*[?!.]*$",
    re.IGNORECASE,
)
_OPENERS = ("Like I said, <USER>: ", "Once more, then: ", "In short: ", "To put it another way: ")
_CLOSERS = (" Does that help?", " Anything else you'd like to know?", " That's the heart of it.")
_FRAMES = ("{}", "{}", "Here's what I know: {}", "Good question, <USER>. {}", "That one I know. {}")


@dataclass(frozen=True, slots=True)
class _Doc:
    answer: str  # as written in the card, macros kept
    knowledge: bool
    macros: bool  # whether ``answer`` needs expanding at all (most don't: skip the regex)
    #: ``answer`` as any user is told it (None: it names the user, or its macros expand)
    said: str | None = None


@dataclass(slots=True)
class _Card:
    """What the backend derives once from a persona card."""

    persona: Persona
    fingerprint: int
    index: Bm25Index
    docs: tuple[_Doc, ...]
    intents: dict[str, tuple[str, ...]]
    topics: tuple[str, ...]
    trait: str | None
    signature: str | None
    name_words: frozenset[str]
    #: Whether its answers act in *asterisks* (role-play cards): so does "I don't know".
    acts: bool = False


def _classify(words: list[str], name_words: frozenset[str]) -> tuple[list[str], list[str]]:
    """The intents at the start of ``words`` (fillers between them skipped) and the words
    left after them: ``"hey ada, how are you"`` is greeting + how, with nothing left."""
    found: list[str] = []
    text = " ".join(words)
    pos, end = 0, len(text)
    while pos < end:
        if match := _INTENT.match(text, pos):
            found.append(str(match.lastgroup))
            pos = match.end() + 1
        else:
            space = text.find(" ", pos)
            stop = end if space < 0 else space
            word = text[pos:stop]
            if word not in STOPWORDS and word not in _FILLER and word not in name_words:
                break
            pos = stop + 1
    return found, text[pos:].split()


def _fingerprint(persona: Persona, sources: tuple[Source, ...]) -> int:
    return hash((persona.name, persona.char_name, persona.personality, persona.tags, sources))


def _said(persona: Persona, answer: str) -> str | None:
    """``answer`` as every user is told it, when no macro of it expands (so each reply
    need not expand it again); None when one does."""
    # a user macro always changes the text (the user's name put in is one character);
    # if nothing changed, nothing depends on who is told
    return answer.strip() if persona.expand(answer, user="\x00") == answer else None


def _build(persona: Persona, fingerprint: int, sources: tuple[Source, ...]) -> _Card:
    name_words = frozenset(WORD.findall(f"{persona.name} {persona.char_name}".lower()))
    intents: dict[str, list[str]] = {}
    docs: list[_Doc] = []
    fields: list[tuple[tuple[list[str], float], ...]] = []
    for source in sources:
        answer = source.answer
        keys = (tokenize(" ".join(source.keys)), KEY_WEIGHT)
        macros = bool(_MACRO.search(answer))
        if source.knowledge:
            docs.append(_Doc(answer, knowledge=True, macros=macros, said=_said(persona, answer)))
            fields.append(((tokenize(_MACRO.sub(" ", answer)), 1.0), ([], 0.0), keys))
            continue
        user = _MACRO.sub(" ", source.question)
        found, rest = _classify(WORD.findall(user.lower()), name_words)
        if found and not rest:
            intents.setdefault(min(found, key=_PRIORITY.index), []).append(answer)
            continue
        docs.append(_Doc(answer, knowledge=False, macros=macros, said=_said(persona, answer)))
        fields.append(
            ((tokenize(user), 1.0), (tokenize(_MACRO.sub(" ", answer)), CHAR_WEIGHT), keys)
        )
    index = Bm25Index(fields)
    answers = [d.answer for d in docs if not d.knowledge]
    return _Card(
        persona=persona,
        fingerprint=fingerprint,
        index=index,
        docs=tuple(docs),
        intents={k: tuple(v) for k, v in intents.items()},
        topics=_topics(persona, sources, index, name_words),
        trait=_trait(persona.personality) or _trait(_bracketed_traits(persona.description)),
        signature=_signature(answers),
        name_words=name_words,
        acts=sum("*" in a for a in answers) * 2 > len(answers) > 0,
    )


def _bracketed_traits(description: str) -> str:
    """The trait list of a W++/bracket description (``Personality= "caring", ...``)."""
    match = re.search(r"personality\s*[=:]\s*([^\]\n]*)", description, re.IGNORECASE)
    return match.group(1).replace('"', "") if match else ""


def _topics(
    persona: Persona, sources: tuple[Source, ...], index: Bm25Index, name_words: frozenset[str]
) -> tuple[str, ...]:
    """Words the persona talks about: its tags and lorebook keys that its card mentions,
    then recurring words, then what its examples are asked about, then long words (more
    often nouns)."""
    forms: dict[str, Counter[str]] = {}
    questions = [s.question for s in sources if s.question]
    asked = set(terms(WORD.findall(" ".join(questions).lower())))
    keys = [k for s in sources for k in s.keys]
    tags: dict[str, int] = {}
    for i, tag in enumerate(tokenize(" ".join((*persona.tags, *keys)))):
        tags.setdefault(tag, i)
    answers = [s.answer for s in sources if s.question]  # how names are written: "MLOps"
    facts = [s.answer for s in sources if not s.question]
    for text in (*questions, *facts, *answers, *persona.tags, *keys):
        for i, word in enumerate(WORD.findall(_MACRO.sub(" ", text))):
            low = word.lower()
            if len(low) < 3 or not low.isalpha() or low in STOPWORDS or low in name_words:
                continue
            term = stem(low)
            if term in _GENERIC or term not in index.df:
                continue
            keep_case = word.isupper() or (i > 0 and word[0].isupper())  # Docker, YAML
            forms.setdefault(term, Counter())[word if keep_case else low] += 1
    ranked = sorted(
        forms, key=lambda t: (tags.get(t, len(tags)), -index.df[t], t not in asked, -len(t))
    )
    if not ranked:
        return _described_topics(persona, name_words)
    return tuple(_topic_form(forms[t]) for t in ranked[:6])


def _described_topics(persona: Persona, name_words: frozenset[str]) -> tuple[str, ...]:
    """For a card with nothing to retrieve (an assistant card that only describes its
    character): the words its description and scenario use most, longest first."""
    counts: Counter[str] = Counter()
    text = _MACRO.sub(" ", f"{persona.description} {persona.scenario}")
    skip = STOPWORDS | name_words | _DESCRIBING
    for word in WORD.findall(text.lower()):
        if len(word) >= 5 and word.isalpha() and word not in skip and stem(word) not in _GENERIC:
            counts[word] += 1
    ranked = sorted(counts, key=lambda w: (-counts[w], -len(w)))
    return tuple(ranked[:4])


def _topic_form(forms: Counter[str]) -> str:
    """A name as written mid-sentence ("Docker"), else a plural ("containers")."""
    for form, _n in forms.most_common():
        if not form.islower() or (form.endswith("s") and not form.endswith("ss")):
            return form
    return forms.most_common(1)[0][0]


def _trait(personality: str) -> str | None:
    """A word for the persona's manner, from its personality: the first one-word phrase
    ("Patient, precise"), else its first word when that reads as an adjective ("Gruff on
    the outside"), else the first two-word phrase."""
    phrases = [
        p.strip(" .!-–—\t\"'").split()
        for p in re.split(r"[,;:/|\n.]|\band\b|\bbut\b", personality)
        if not _MACRO.search(p)
    ]
    first = _FIRST_WORD.match(personality.strip())
    chosen = next((p for p in phrases if len(p) == 1), None)
    if chosen is None and first is not None:
        word = first.group().lower()
        if word not in STOPWORDS and (not word.endswith("s") or word.endswith("ous")):
            chosen = [first.group()]
    chosen = chosen or next((p for p in phrases if len(p) == 2), None)
    if not chosen:
        return None
    trait = " ".join(chosen)
    return trait[0].lower() + trait[1:] if trait[1:2].islower() else trait


def _signature(answers: Sequence[str]) -> str | None:
    """An interjection the persona opens with more than once ("Arr, ..."), if any."""
    counts = Counter(m.group(1) for a in answers if (m := _OPENER.match(a)))
    for word, n in counts.most_common(1):
        if n >= 2 and word.lower() not in _NOT_SIGNATURE:
            return word
    return None


def _decap(line: str) -> str | None:
    """``line`` with a lowercase first letter when that is safe ("The …" but not "Docker …")."""
    match = _FIRST_WORD.match(line)
    if match is None or match.start() != 0:
        return None
    word = match.group()
    if word.lower() not in STOPWORDS or word == "I" or not (len(word) == 1 or word[1:].islower()):
        return None
    return line[0].lower() + line[1:]


@dataclass(slots=True)
class _Reply:
    """One reply being written: the card, the user, the dice and the persona's recent
    replies (most recent first)."""

    card: _Card
    user: str
    rng: random.Random
    recent: tuple[str, ...]
    asked: list[str]  # the user's previous messages, newest first
    said: str = ""  # the message being answered, never said back
    #: Replies this message already had (``/retry``): not to be given again.
    avoid: frozenset[str] = frozenset()
    subject: str = ""  # what an unknown question asks about, as the user wrote it
    #: ``said`` as plain words, worked out once (each candidate answer is compared to it)
    said_words: str = field(init=False, default="")
    _said_split: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.said_words = _plain(self.said)
        self._said_split = self.said_words.split(" ")

    @property
    def last(self) -> str:
        return self.recent[0] if self.recent else ""

    def expand(self, raw: str) -> str:
        return self.card.persona.expand(raw, user=self.user).strip()

    def answer_of(self, doc: _Doc) -> str:
        """A document's answer, expanded (worked out once per card when it can be)."""
        return self.expand(doc.answer) if doc.said is None else doc.said

    def pick(self, raws: Iterable[str]) -> str:
        """One of ``raws``, expanded, and not the last reply (nor one a /retry
        replaces) again when avoidable."""
        return self.choose([self.expand(r) for r in raws])

    def choose(self, options: Sequence[str], preferred: int | None = None) -> str:
        """One of ``options`` (the first ``preferred`` of them first) that is neither
        the last reply nor one a /retry replaces, when there is one."""
        fresh = [o for o in options if o not in self.avoid]
        best = [o for o in options[:preferred] if o not in self.avoid]
        options = best or fresh or list(options)
        return self.rng.choice([o for o in options if o != self.last] or options)

    def fill(self, intent: str) -> str:
        card, rng = self.card, self.rng
        pool = list(card.topics[:4])
        count = min(len(pool), 2 if rng.random() < 0.6 else 1)
        topics = " or ".join(rng.sample(pool, count))
        trait = card.trait or ""
        usable = [
            t
            for t in _TEMPLATES[intent]
            if (trait or ("{trait}" not in t and "{Trait}" not in t))
            and (pool or "{topics}" not in t)
            and (self.subject or "{subject}" not in t)
        ]
        preferred = None
        if intent == "unknown":
            # An honest "I don't know" names what was asked, or points at what the
            # persona does know; the others are there for a /retry that used those up.
            marks = [m for m in ("{subject}", "{topics}") if m != "{subject}" or self.subject]
            marks = [m for m in marks if m != "{topics}" or pool]
            usable.sort(key=lambda t: not all(m in t for m in marks))
            preferred = sum(all(m in t for m in marks) for t in usable) or None
        subject = self.subject  # put in after expanding: it is the user's own words
        options = [
            self.expand(
                t.replace("{trait}", trait)
                .replace("{Trait}", trait[:1].upper() + trait[1:])
                .replace("{topics}", topics)
            )
            .replace("{subject}?", subject[:1].upper() + subject[1:] + "?")
            .replace("{subject}", subject)
            for t in usable
        ]
        said = self.choose(options, preferred)
        if intent == "unknown" and card.acts:
            said = f"{self.expand(self.rng.choice(_ACTIONS))} {said}"
        return said

    def hello(self, answer: str) -> str:
        """A greeting to open ``answer`` with, naming the user unless the answer does."""
        return "Hello!" if self.user in answer else self.expand("Hello, <USER>!")

    def intent(self, intent: str) -> str:
        own = [
            o
            for o in map(self.expand, self.card.intents.get(intent, ()))
            if o and o != self.last and o not in self.avoid
        ]
        return self.rng.choice(own) if own else self.fill(intent)

    def echoes(self, answer: str) -> bool:
        """Whether ``answer`` would only say the user's own message back."""
        said = self.said_words
        if not said:
            return False
        low = answer.lower()
        # every word said is in an answer that says it back: a cheap test first
        if not all(map(low.__contains__, self._said_split)):
            return False
        words = " ".join(WORD.findall(low))
        return words == said or (said in words and len(words) < 2 * len(said))

    def retrieve(self, query: dict[str, float]) -> str | None:
        index, docs = self.card.index, self.card.docs
        related: list[int] = []
        floor = MIN_SCORE
        for doc, score in index.search(query):
            if score < floor:
                break  # ranked: the rest score lower still
            if index.coverage(query, doc) >= MIN_COVERAGE:
                floor = floor if related else max(MIN_SCORE, RELATED * score)
                related.append(doc)
        related = [d for d in related if not self.echoes(self.answer_of(docs[d]))]
        if not related:
            return None
        fresh = related
        if self.recent:
            # From the second letter on: a framed fact may have been said as "Well, a …".
            cores = {
                d: (self.expand(docs[d].answer) if docs[d].macros else docs[d].answer)[1:]
                for d in related
            }
            said = "\x00".join(self.recent)
            fresh = [d for d in related if cores[d] not in said]
            fresh = fresh or [d for d in related if cores[d] not in self.last]
        if not fresh:
            # The best answer was the last reply and nothing else fits: say it differently.
            raw = docs[related[0]].answer
            return self.pick([o + raw for o in _OPENERS] + [raw + c for c in _CLOSERS])
        if fresh[0] != related[0]:
            # The best answer was just given: a fact that elaborates reads better than
            # the answer to a neighbouring question.
            fresh.sort(key=lambda d: not docs[d].knowledge)
        best = docs[fresh[0]]
        if best.knowledge:
            return self.expand(self.frame(best.answer))
        extra = [docs[d] for d in fresh[1:] if docs[d].knowledge]
        if extra and self.rng.random() < COMBINE_CHANCE:
            return self.expand(f"{best.answer} {extra[0].answer}")
        return self.answer_of(best)

    def frame(self, line: str) -> str:
        """A knowledge line as the persona would say it."""
        frames = [f.format(line) for f in _FRAMES]
        if (low := _decap(line)) is not None:
            frames.append(f"Well, {low}")
            if self.card.signature:
                frames += [f"{self.card.signature}, {low}"] * 2
        return self.rng.choice(frames)


def _recent(window: Sequence[Turn], message: Turn) -> tuple[tuple[str, ...], list[str]]:
    """The persona's last few replies and the user's last few messages, newest first."""
    replies: list[str] = []
    asked: list[str] = []
    for turn in reversed(window):
        if turn.role == "assistant":
            replies.append(turn.text.strip())
        elif turn.seq != message.seq:
            asked.append(turn.text)
        if len(replies) >= RECENT and len(asked) >= RECENT:
            break
    return tuple(replies[:RECENT]), asked[:RECENT]


def readable_text(message: Turn) -> str:
    """What this backend can read of a message: its text, its voice notes' transcripts
    and its files' text (it has no eyes for images)."""
    parts = [message.text, *(item.text for item in message.attachments)]
    return "\n\n".join(part for part in parts if part.strip())


def cannot_perceive(message: Turn) -> str:
    """A line saying what of the message this backend could not take in, or ""."""
    kinds = {item.kind for item in message.attachments if not item.text}
    if AttachmentKind.IMAGE in kinds:
        return "I can't see pictures from here, I'm afraid. Tell me what it shows?"
    if AttachmentKind.AUDIO in kinds:
        return "I can't listen to voice notes from here. Could you type it for me?"
    return ""


class OfflineBackend:
    """Answers from the persona card itself (see the module docstring); no I/O.

    ``seed`` makes replies reproducible (None: a random seed per instance); ``word_delay``
    pauses between streamed words so a reply reads as it is written.
    """

    name = "offline"

    def __init__(self, seed: int | None = None, word_delay: float = 0.0) -> None:
        self._seed = secrets.randbits(64) if seed is None else seed
        self._word_delay = word_delay
        self._cards: dict[str, _Card] = {}
        # How often each stored user turn was answered, so /retry phrases it anew.
        self._answered: OrderedDict[tuple[str, int, float], int] = OrderedDict()

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
        """Stream :meth:`compose`'s reply word by word (each word with its trailing space)
        when ``word_delay`` paces it; without a delay every word would arrive in the same
        instant, so the reply is one delta (each delta costs every layer above a trip).
        ``summary`` is ignored: the card is all this backend reads."""
        attempt = self._count_answer((persona.id, message.seq, message.created_at))
        text = self.compose(persona, window, message, attempt=attempt, context=context)
        if self._word_delay <= 0:
            yield text
            return
        deltas = _DELTA.findall(text)
        yield deltas[0]
        for delta in deltas[1:]:
            await asyncio.sleep(self._word_delay)
            yield delta

    async def aclose(self) -> None:
        """Nothing to release."""

    def compose(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        *,
        attempt: int = 0,
        context: ReplyContext | None = None,
    ) -> str:
        """The whole reply to ``message``, never empty; deterministic for a given seed.
        ``attempt`` counts earlier answers to the same stored turn; ``context`` names
        the replies a ``/retry`` replaces, and the reply is none of them when another
        is possible (else it is reworded)."""
        context = context or ReplyContext()
        card = self._card(persona)
        unseen = cannot_perceive(message)
        if message.attachments:
            message = dataclasses.replace(message, text=readable_text(message))
            if unseen and not message.text.strip():
                return unseen
        said = self._compose(card, window, message, attempt, context)
        return f"{unseen}\n\n{said}" if unseen else said

    def _compose(
        self,
        card: _Card,
        window: Sequence[Turn],
        message: Turn,
        attempt: int,
        context: ReplyContext,
    ) -> str:
        user = context.user
        name = user.name or message.author.strip() or "friend"
        text = message.text[:MAX_CHARS]
        avoid = frozenset(r.strip() for r in context.earlier_replies)
        kind = recall_question(text)
        if kind is not None:
            return answer_recall(kind, window, message, user, name, avoid)
        reply = self._reply(card, window, message, attempt, name, avoid)
        for extra in range(RETRY_TRIES if avoid else 1):
            if extra:
                reply = self._reply(card, window, message, attempt + extra * 7919, name, avoid)
            # A card line made only of macros can expand to nothing.
            said = self._answer(reply, text) or reply.fill("nudge")
            if said not in avoid:
                return said
        return reply.pick([o + said for o in _OPENERS] + [said + c for c in _CLOSERS])

    def _reply(
        self,
        card: _Card,
        window: Sequence[Turn],
        message: Turn,
        attempt: int,
        user: str,
        avoid: frozenset[str],
    ) -> _Reply:
        recent, asked = _recent(window, message)
        # what a /retry replaces counts as just said: retrieval moves on from it
        recent = (*sorted(avoid), *recent)
        salt = zlib.crc32(
            f"{self._seed}\x1f{card.persona.id}\x1f{len(window)}\x1f{attempt}".encode()
        )
        rng = random.Random(zlib.crc32(message.text.encode("utf-8", "surrogatepass"), salt))
        subject = _subject(message.text[:MAX_CHARS])
        return _Reply(card, user, rng, recent, asked, message.text, avoid, subject)

    def _count_answer(self, turn: tuple[str, int, float]) -> int:
        """0 the first time a turn is answered, 1 on its first /retry, and so on."""
        attempt = self._answered.pop(turn, -1) + 1
        self._answered[turn] = attempt
        if len(self._answered) > _REMEMBERED_TURNS:
            self._answered.popitem(last=False)
        return attempt

    def _answer(self, reply: _Reply, text: str) -> str:
        card, asked = reply.card, reply.asked
        words = WORD.findall(text.lower())
        if not words:
            return reply.intent("nudge")
        intents, rest = _classify(words, card.name_words)
        if intents and (not rest or (intents[0] in ("thanks", "goodbye") and "?" not in text)):
            main = min(intents, key=_PRIORITY.index)
            said = reply.intent(main)
            if main != "greeting" and "greeting" in intents and not _greets(said):
                said = f"{reply.hello(said)} {said}"
            return said
        query = dict.fromkeys(terms(rest), 1.0)
        # (a question of digits only, "what is 2+2?", is not a follow-up: it asks something)
        bare = not query and not any(w.isdigit() for w in rest)
        if asked and len(query) <= 3 and (bare or _is_anaphoric(words)):
            # The nearest earlier question that had content: "why?" after "and then?".
            context = next((t for t in map(tokenize, (a[:MAX_CHARS] for a in asked)) if t), [])
            for term in context:
                query.setdefault(term, CONTEXT_WEIGHT)
        answer = reply.retrieve(query) if query else None
        if answer is None:
            return reply.fill("unknown" if query or "?" in text else "nudge")
        if "greeting" in intents and not _greets(answer):
            answer = f"{reply.hello(answer)} {answer}"
        return answer

    def _card(self, persona: Persona) -> _Card:
        card = self._cards.get(persona.id)
        if card is not None and card.persona is persona:
            return card
        sources = tuple(card_sources(persona))
        fingerprint = _fingerprint(persona, sources)
        if card is None or card.fingerprint != fingerprint:
            card = _build(persona, fingerprint, sources)
            self._cards[persona.id] = card
        card.persona = persona  # the same card again: next time the identity check suffices
        return card


def _subject(text: str) -> str:
    """What a question asks about, as written ("What is Eldoria?" -> "Eldoria"), when
    it reads as a name or a short phrase; "" otherwise."""
    match = _SUBJECT.match(text.strip())
    if match is None:
        return ""
    subject = (match.group("s") or match.group("t") or "").strip()
    if not re.search(r"[^\W\d_]{2}", subject) or subject.lower() in STOPWORDS:
        return ""
    return subject


def _plain(text: str) -> str:
    """``text`` as lowercase words only, for comparing what was said."""
    return " ".join(WORD.findall(text.lower()))


def _is_anaphoric(words: list[str]) -> bool:
    return _ANAPHOR.match(" ".join(words)) is not None or any(w in _PRONOUNS for w in words)


def _greets(answer: str) -> bool:
    return "greeting" in _classify(WORD.findall(answer[:40].lower()), frozenset())[0]
