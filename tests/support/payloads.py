"""Hypothesis strategies for hostile platform input, shared by the Telegram and Discord
fuzz tests: texts, Telegram updates, Discord gateway messages and slash commands.

Telegram updates come in two grades. :func:`telegram_updates` are updates PTB can
build its objects from: every update kind, hostile values, missing fields, nulls, and
scalars of the wrong type (PTB checks no types). :func:`broken_updates` are JSON
objects that are no update at all: an object or a list where Telegram sends one, junk
in a list, dates out of range. The Discord strategies build payloads discord.py's own
parser accepts; what it does not accept is the subject of a separate test.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

from tests.support.discord_harness import ALICE, BOB, GUILD_ID
from tests.support.discord_harness import interaction as dc_interaction
from tests.support.discord_harness import message as dc_message
from tests.support.discord_server import BOT

Json = Any
Path = tuple[str | int, ...]

# -- text --------------------------------------------------------------------------------

UNICODE_EDGES = (
    "\u0301",  # a combining mark with nothing to combine with
    "a\u0308\u0301\u0323",  # a stack of them
    "\u202e",  # right-to-left override
    "\u202d\u2066\u2069",  # left-to-right override, isolates
    "\u200d",  # zero-width joiner
    "\u200b\u2060\ufeff",  # zero-width space, word joiner, byte order mark
    "👨‍👩‍👧‍👦",  # an emoji ZWJ sequence
    "🏳️‍🌈",
    "👍🏽",  # a skin tone modifier
    "🇺🇳",  # a flag (two regional indicators)
    "𝕏",  # an astral letter: two UTF-16 units
    "😀",
    "\U0010fffd",  # the last private-use plane
    "\U000e0041",  # a tag character
    "\x00",  # NUL
    "\x1b[31m",  # a terminal escape
    "\r\n",
    "\r",
    "\t",
    "\x0b\x0c\x85",
    "\u2028",  # line separator (a line break to Python, not to JSON)
    "\u2029",
    "\u00a0\u3000",  # non-breaking and ideographic spaces
    "\ufffd",
    "\uffff",  # a non-character
    "ﷺ",  # one of the longest glyphs
)
MARKUP = (
    "<",
    ">",
    "&",
    "&amp;",
    "&#0;",
    "<b>",
    "</b>",
    "<a href='javascript:x'>",
    "<!--",
    "*",
    "**",
    "_",
    "__",
    "`",
    "```",
    "```py\n",
    "````",
    "~~",
    "||",
    "[x](https://example.org/a?b=1&c=2)",
    "[x](javascript:alert(1))",
    "# ",
    "\n\n",
    ". ",
    '!" ',
    "?') ",
    " ",
    "word",
)
BLANKS = " \t\n\r\u00a0\u2028\u3000\u200b"
#: Cheap to draw, expensive to handle: a unit repeated to a length past every limit.
_HUGE_UNITS = ("a", "word ", "😀", "\u0301", "<&>", "```\n", "\n", "@everyone ")


def _repeat(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


def huge_texts(min_size: int = 4_097, max_size: int = 100_000) -> st.SearchStrategy[str]:
    return st.builds(
        _repeat, st.sampled_from(_HUGE_UNITS), st.integers(min_value=min_size, max_value=max_size)
    )


def mixed_texts(
    platform_tokens: tuple[str, ...] = (), max_tokens: int = 24
) -> st.SearchStrategy[str]:
    """Unicode edge cases, markup, the platform's own syntax (commands, mentions) and
    arbitrary text, run together."""
    token = st.one_of(
        st.sampled_from(UNICODE_EDGES + MARKUP + platform_tokens),
        st.text(max_size=8),
    )
    return st.lists(token, min_size=1, max_size=max_tokens).map("".join)


def hostile_texts(
    platform_tokens: tuple[str, ...] = (), *, huge: bool = True
) -> st.SearchStrategy[str]:
    """Empty, blank, huge (past every limit, up to 100,000 characters), or mixed."""
    mixed = mixed_texts(platform_tokens)
    kinds = [st.just(""), st.text(alphabet=BLANKS, min_size=1, max_size=12), mixed, mixed, mixed]
    if huge:
        kinds.append(huge_texts())
    return st.one_of(kinds)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def likely(draw: st.DrawFn, odds: int = 3) -> bool:
    """True ``odds`` times out of ``odds + 1``. (Hypothesis favours small integers,
    so ``draw(st.integers(0, n)) != 0`` is not as likely as it looks.)"""
    return draw(st.sampled_from([True] * odds + [False]))


def rarely(draw: st.DrawFn, odds: int = 3) -> bool:
    """True once in ``odds + 1`` times."""
    return not likely(draw, odds)


class Compact(list[Json]):
    """Payloads whose repr (in Hypothesis' report of a failing example) shortens long
    strings: one 100,000-character text makes a report unreadable, and Hypothesis
    warns (an error here) about a repr that large."""

    def __repr__(self) -> str:
        return repr(_shortened(list(self)))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _shortened(value: Json) -> Json:
    if isinstance(value, str) and len(value) > 120:
        return f"{value[:60]}…(+{len(value) - 60} characters)"
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_shortened(item) for item in value]
    return value


def compact(strategy: st.SearchStrategy[list[Json]]) -> st.SearchStrategy[Compact]:
    return strategy.map(Compact)


# -- generic mutations -------------------------------------------------------------------


def _paths(value: Json, prefix: Path = ()) -> Iterator[tuple[Path, Json]]:
    """Every (path, value) below ``value``, parents before children."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key), child
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index), child
            yield from _paths(child, (*prefix, index))


def _parent(value: Json, path: Path) -> Json | None:
    for step in path[:-1]:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _apply(value: Json, path: Path, action: str, replacement: Json = None) -> None:
    parent = _parent(value, path)
    last = path[-1]
    in_dict = isinstance(parent, dict) and last in parent
    in_list = isinstance(parent, list) and isinstance(last, int) and last < len(parent)
    if not (in_dict or in_list):
        return  # a parent was dropped or replaced by an earlier mutation
    if action == "drop":
        del parent[last]
    else:
        parent[last] = replacement


def _is_scalar(value: Json) -> bool:
    return not isinstance(value, dict | list)


def _is_date(path: Path) -> bool:
    return isinstance(path[-1], str) and path[-1].endswith("date")


#: Fields the adapters read: ids, texts, entities, names, chat types, threads.
FOCUS = frozenset(
    {"id", "text", "caption", "entities", "offset", "length", "type", "from", "chat"}
    | {"first_name", "last_name", "is_bot", "message_id", "message_thread_id"}
    | {"is_topic_message", "reply_to_message", "content", "mentions", "author"}
)
WRONG_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(UNICODE_EDGES),
)
#: Wrong, but still a time PTB can convert (it raises OverflowError, which the webhook
#: route does not expect, on dates out of the platform's range: see broken_updates).
WRONG_DATES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.floats(min_value=-1e9, max_value=1e9),
    st.text(max_size=10),
)


@st.composite
def scalar_mutations(draw: st.DrawFn, base: Json, *, max_mutations: int = 3) -> Json:
    """``base`` with up to ``max_mutations`` fields dropped, nulled, or (for scalars)
    given a value of another type."""
    value = copy.deepcopy(base)
    paths = list(_paths(value))
    if not paths:
        return value
    # The fields the adapters read are mutated more often than the hundreds of others.
    focused = [(p, v) for p, v in paths if p[-1] in FOCUS] or paths
    # Half of the values stay as they are: each mutation tends to make the update one
    # the bot ignores, and the interesting paths are those of updates it answers.
    count = draw(st.sampled_from([0, 0, *range(1, max_mutations + 1)]))
    for _ in range(count):
        path, current = draw(st.sampled_from(focused if likely(draw, 1) else paths))
        action = draw(st.sampled_from(["drop", "null", "wrong"]))
        if action == "wrong" and _is_scalar(current):
            _apply(value, path, "set", draw(WRONG_DATES if _is_date(path) else WRONG_SCALARS))
        elif action == "drop" or isinstance(path[-1], int):
            # A null in a list of objects is junk in a list: see structural_mutations.
            _apply(value, path, "drop")
        else:
            _apply(value, path, "set", None)
    return value


JUNK = st.one_of(
    st.text(max_size=5),
    st.integers(),
    st.booleans(),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), min_size=1, max_size=3),
)


@st.composite
def structural_mutations(draw: st.DrawFn, base: Json) -> Json:
    """``base`` with an object or a list replaced by junk (a scalar, a list of
    scalars), or a date moved out of the platform's range."""
    value = copy.deepcopy(base)
    nested = [(p, v) for p, v in _paths(value) if not _is_scalar(v) or _is_date(p)]
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        path, current = draw(st.sampled_from(nested))
        if _is_date(path) and _is_scalar(current):
            junk = st.one_of(st.sampled_from([10**20, -(10**20), 2**63]), st.just(float("inf")))
            _apply(value, path, "set", draw(junk))
        else:
            _apply(value, path, "set", draw(JUNK))
    return value


# -- Telegram ----------------------------------------------------------------------------

TG_BOT_ID = 1000
TG_BOT_USERNAME = "persona_bot"
TG_TOKENS = (
    "/start",
    "/start link-ABCD-EFGH",
    "/help",
    "/help@persona_bot",
    "/HELP@Persona_Bot",
    "/reset@other_bot",
    "/persona morrow",
    "/persona",
    "/personas",
    "/link",
    "/link 🙂",
    "/whoami",
    "/retry",
    "/forget",
    "/nope",
    "/",
    "@",
    "@persona_bot",
    "@persona_bot,",
    "@PERSONA_BOT:",
    "@other_bot",
    "@persona_botx",
    "#tag",
    "https://t.me/persona_bot?start=x",
)
ENTITY_TYPES = (
    "bot_command",
    "mention",
    "text_mention",
    "url",
    "bold",
    "code",
    "pre",
    "text_link",
    "hashtag",
    "custom_emoji",
    "blockquote",
    "not_a_type_yet",
)
_INT64 = 2**63
TG_USER_IDS = st.one_of(
    st.integers(min_value=1, max_value=10**7),
    st.sampled_from([1, 2**31 - 1, 2**31, 2**52, 2**53 + 1, _INT64 - 1, _INT64, 2**64, 0, -1]),
)
TG_GROUP_IDS = st.one_of(
    st.integers(min_value=-(10**7), max_value=-1),
    st.integers(min_value=-1_009_999_999_999, max_value=-1_000_000_000_000),
    st.sampled_from([-(_INT64), -(_INT64) - 1, -(2**52), 0]),
)
DATES = st.integers(min_value=0, max_value=2**31 - 1)
NAMES = st.one_of(
    st.just("Alice"), hostile_texts(huge=False), huge_texts(min_size=200, max_size=5000)
)


def tg_users(ids: st.SearchStrategy[int] = TG_USER_IDS) -> st.SearchStrategy[dict[str, Json]]:
    return st.fixed_dictionaries(
        {"id": ids, "is_bot": st.sampled_from([False, False, False, True]), "first_name": NAMES},
        optional={
            "last_name": NAMES,
            "username": st.text(max_size=12),
            "language_code": st.sampled_from(["en", "ar", "he", "zz-ZZ", ""]),
            "is_premium": st.booleans(),
            "added_to_attachment_menu": st.booleans(),
        },
    )


def tg_chat(kind: str, chat_id: int, person: dict[str, Json]) -> dict[str, Json]:
    if kind == "private":
        return {"id": chat_id, "type": "private", "first_name": person["first_name"]}
    return {"id": chat_id, "type": kind, "title": "The Group"}


@st.composite
def tg_entities(draw: st.DrawFn, text: str) -> list[dict[str, Json]]:
    """Entities as Telegram marks them, or at odd offsets: past the end, negative,
    inside a surrogate pair, overlapping."""
    size = utf16_len(text)
    honest = _honest_entities(text)
    offsets = st.one_of(
        st.integers(min_value=0, max_value=size + 2),
        st.sampled_from([-1, 2**40]),
    )
    lengths = st.one_of(st.integers(min_value=0, max_value=size + 2), st.just(2**40))
    odd = st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(ENTITY_TYPES), "offset": offsets, "length": lengths},
            optional={
                "user": tg_users(st.sampled_from([TG_BOT_ID, 5, 6])),
                "url": st.text(max_size=12),
                "language": st.text(max_size=4),
                "custom_emoji_id": st.text(max_size=4),
            },
        ),
        max_size=4,
    )
    choice = draw(st.sampled_from(["honest", "odd", "both", "none"]))
    if choice == "honest":
        return honest
    if choice == "odd":
        return draw(odd)
    if choice == "both":
        return honest + draw(odd)
    return []


def _honest_entities(text: str) -> list[dict[str, Json]]:
    """A leading ``/command`` and the ``@mentions``, as Telegram would mark them."""
    found: list[dict[str, Json]] = []
    command = re.match(r"/[^\s@]*(?:@\w+)?", text)
    if command:
        found.append({"type": "bot_command", "offset": 0, "length": utf16_len(command.group())})
    for mention in re.finditer(r"(?<!\w)@\w+", text):
        offset = utf16_len(text[: mention.start()])
        found.append({"type": "mention", "offset": offset, "length": utf16_len(mention.group())})
    return found


ATTACHMENTS: tuple[dict[str, Json], ...] = (
    {
        "sticker": {
            "file_id": "s1",
            "file_unique_id": "u1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    },
    {"photo": [{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90}]},
    {"voice": {"file_id": "v1", "file_unique_id": "vu1", "duration": 2}},
    {"new_chat_members": [{"id": 66, "is_bot": True, "first_name": "Helper"}]},
    {"pinned_message": {"message_id": 3, "date": 0, "chat": {"id": -5, "type": "group"}}},
)


@st.composite
def tg_messages(draw: st.DrawFn, *, depth: int = 0) -> dict[str, Json]:
    """A Message as Telegram sends it (``from`` may be missing, as in a group where a
    channel or an anonymous admin speaks), with hostile text and entities."""
    person = draw(tg_users())
    kind = draw(st.sampled_from(["private"] * 4 + ["group", "supergroup", "channel", "x"]))
    chat_id = person["id"] if kind == "private" else draw(TG_GROUP_IDS)
    body: dict[str, Json] = {
        "message_id": draw(st.integers(min_value=1, max_value=2**31)),
        "date": draw(DATES),
        "chat": tg_chat(kind, chat_id, person),
    }
    if kind == "private" or likely(draw, 3):
        body["from"] = person
    if likely(draw, 4):
        text = draw(hostile_texts(TG_TOKENS))
        body["text"] = text
        entities = draw(tg_entities(text))
        if entities:
            body["entities"] = entities
    else:
        body |= draw(st.sampled_from(ATTACHMENTS))
        if draw(st.booleans()):
            caption = draw(hostile_texts(TG_TOKENS))
            body["caption"] = caption
            body["caption_entities"] = draw(tg_entities(caption))
    group = kind != "private"
    if depth == 0 and (rarely(draw, 3) or (group and draw(st.booleans()))):
        # In a group, a reply to the bot is one of the ways to address it.
        replied = draw(tg_messages(depth=1))
        if group or draw(st.booleans()):
            replied["from"] = {"id": TG_BOT_ID, "is_bot": True, "first_name": "Persona"}
        body["reply_to_message"] = replied
    if rarely(draw, 5):
        body["message_thread_id"] = draw(st.integers(min_value=1, max_value=2**31))
        body["is_topic_message"] = True
    if rarely(draw, 5):
        body["sender_chat"] = {"id": -100_900, "type": "channel", "title": "News"}
    if rarely(draw, 5):
        body["a_field_from_the_future"] = {"nested": [1, None, "x"]}
    return body


def _edited(message: dict[str, Json]) -> dict[str, Json]:
    return {"edited_message": message | {"edit_date": message["date"] + 1}}


def _channel_post(message: dict[str, Json]) -> dict[str, Json]:
    message = {k: v for k, v in message.items() if k != "from"}
    message["chat"] = {"id": -100_900, "type": "channel", "title": "News"}
    return {"channel_post": message}


def _callback_query(message: dict[str, Json]) -> dict[str, Json]:
    query: dict[str, Json] = {
        "id": "42",
        "from": message.get("from") or {"id": 5, "is_bot": False, "first_name": "A"},
        "chat_instance": "ci",
        "data": message.get("text") or "",
    }
    if "from" in message:
        query["message"] = message
    return {"callback_query": query}


def _my_chat_member(message: dict[str, Json]) -> dict[str, Json]:
    bot = {"id": TG_BOT_ID, "is_bot": True, "first_name": "Persona"}
    return {
        "my_chat_member": {
            "chat": message["chat"],
            "from": message.get("from") or {"id": 5, "is_bot": False, "first_name": "A"},
            "date": message["date"],
            "old_chat_member": {"status": "member", "user": bot},
            "new_chat_member": {"status": "kicked", "user": bot, "until_date": 0},
        }
    }


def _unknown_kind(message: dict[str, Json]) -> dict[str, Json]:
    return {"business_message_of_2030": message}


_OTHER_KINDS: tuple[Callable[[dict[str, Json]], dict[str, Json]], ...] = (
    _edited,
    _channel_post,
    _callback_query,
    _my_chat_member,
    _unknown_kind,
    lambda message: {},
)


@st.composite
def well_formed_updates(draw: st.DrawFn) -> dict[str, Json]:
    """An update of any kind, as Telegram would send it (without its ``update_id``);
    three in four are new messages, the kind the bot answers."""
    message = draw(tg_messages())
    if likely(draw):
        return {"message": message}
    return draw(st.sampled_from(_OTHER_KINDS))(message)


def telegram_updates() -> st.SearchStrategy[dict[str, Json]]:
    """Updates PTB builds objects from (see the module doc); no ``update_id`` yet.
    Two in three are messages a person sends the bot (privately, or addressing it in a
    group), which go all the way through the engine and back, half of them with one
    field dropped, nulled or of the wrong type; the rest are of any shape."""
    return st.one_of(
        answerable_updates(),
        answerable_updates().flatmap(lambda update: scalar_mutations(update, max_mutations=1)),
        well_formed_updates().flatmap(scalar_mutations),
    )


@st.composite
def answerable_updates(draw: st.DrawFn) -> dict[str, Json]:
    """A text message from a person the bot answers: in their private chat, or in a
    group mentioning the bot, commanding it or replying to it. The text and its
    entities are hostile; the rest is as Telegram sends it."""
    body = draw(tg_messages())
    person = draw(tg_users(st.integers(min_value=1, max_value=10**7))) | {"is_bot": False}
    body["from"] = person
    text = draw(hostile_texts(TG_TOKENS))
    if likely(draw, 2):
        body["chat"] = tg_chat("private", person["id"], person)
    else:
        body["chat"] = tg_chat("supergroup", draw(TG_GROUP_IDS), person)
        way = draw(st.sampled_from(["mention", "command", "reply"]))
        if way == "reply":
            replied = draw(tg_messages(depth=1))
            replied["from"] = {"id": TG_BOT_ID, "is_bot": True, "first_name": "Persona"}
            body["reply_to_message"] = replied
        else:
            text = ("@persona_bot " if way == "mention" else "/help@persona_bot ") + text
    for field in ("caption", "caption_entities", *(next(iter(a)) for a in ATTACHMENTS)):
        body.pop(field, None)
    body["text"] = text
    body["entities"] = draw(tg_entities(text))
    return {"message": body}


def with_update_id(update: dict[str, Json], update_id: int) -> dict[str, Json]:
    """``update`` with ``update_id`` first, unless a mutation already set one."""
    return {"update_id": update_id, **update}


def broken_updates() -> st.SearchStrategy[dict[str, Json]]:
    """JSON objects that are no update PTB can read (see the module doc)."""
    message_update = tg_messages().map(lambda message: {"update_id": 1, "message": message})
    return message_update.flatmap(structural_mutations)


# -- Discord -----------------------------------------------------------------------------

DC_BOT_ID = 1000
DC_TOKENS = (
    "<@1000>",
    "<@!1000>",
    "<@&1000>",
    "<@&77>",
    "<@43>",
    "<@!99999999999999999999999>",
    "<@>",
    "<@1000",
    "@everyone",
    "@here",
    "<#600>",
    "<:blob:123>",
    "<a:dance:456>",
    "<t:0:R>",
    "||spoiler||",
    "> quote",
    "-# small",
    "/chat",
    "/help",
    "/persona morrow",
    "/forget confirm",
)
DC_USER_IDS = st.one_of(
    st.integers(min_value=1, max_value=2**64 - 1),
    st.sampled_from([42, 43, DC_BOT_ID, 1, 2**63 - 1, 2**64 - 1]),
)


def dc_users(ids: st.SearchStrategy[int] = DC_USER_IDS) -> st.SearchStrategy[dict[str, Json]]:
    name = st.one_of(st.just("someone"), st.text(max_size=12), st.sampled_from(UNICODE_EDGES))
    return st.fixed_dictionaries(
        {
            "id": ids.map(str),
            "username": name,
            "discriminator": st.sampled_from(["0", "0001"]),
            "avatar": st.none(),
        },
        optional={
            "global_name": st.none() | name,
            "bot": st.booleans(),
            "system": st.booleans(),
            "public_flags": st.integers(min_value=0, max_value=2**20),
        },
    )


_MESSAGE_TYPES = st.sampled_from([0, 0, 0, 19, 6, 7, 20, 46, 9999])


@st.composite
def discord_messages(draw: st.DrawFn) -> dict[str, Json]:
    """A MESSAGE_CREATE as Discord sends it, in a guild channel or a DM: hostile
    content, mentions of the bot (or not) anywhere, any author, odd message types,
    replies to the bot or to others, fields discord.py does not know."""
    guild = draw(st.booleans())
    person = draw(st.one_of(st.sampled_from([ALICE, BOB, BOT]), dc_users()))
    mentions = draw(st.lists(st.one_of(st.sampled_from([BOT, BOB]), dc_users()), max_size=3))
    replying_to = draw(
        st.one_of(
            st.none(),
            st.builds(lambda text: dc_message(text, person=BOT), mixed_texts(DC_TOKENS, 4)),
            st.builds(lambda text: dc_message(text, person=BOB), mixed_texts(DC_TOKENS, 4)),
        )
    )
    content = draw(hostile_texts(DC_TOKENS))
    payload = dc_message(
        content, guild=guild, person=person, mentions=mentions, replying_to=replying_to
    )
    if rarely(draw, 3):
        payload["type"] = draw(_MESSAGE_TYPES)
    if rarely(draw, 3):
        payload["mention_roles"] = draw(
            st.lists(st.sampled_from([str(DC_BOT_ID), "77", str(GUILD_ID)]), max_size=2)
        )
    if rarely(draw, 4):
        payload["mention_everyone"] = True
    if rarely(draw, 4):
        payload["edited_timestamp"] = None
        payload["nonce"] = draw(st.one_of(st.text(max_size=25), st.integers(0, 2**63)))
    if rarely(draw, 4):
        payload["a_field_from_the_future"] = {"nested": [1, None, "x"]}
        payload["flags"] = draw(st.integers(min_value=0, max_value=2**31))
    return payload


def _option(name: str, kind: int, value: Json) -> dict[str, Json]:
    return {"name": name, "type": kind, "value": value}


_OPTION_VALUES = st.one_of(
    hostile_texts(DC_TOKENS).map(lambda v: (3, v)),
    hostile_texts(DC_TOKENS).map(lambda v: (3, v)),
    st.integers(min_value=-(2**53), max_value=2**53).map(lambda v: (4, v)),
    st.booleans().map(lambda v: (5, v)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (10, v)),
)


@st.composite
def discord_slash_commands(draw: st.DrawFn) -> dict[str, Json]:
    """An APPLICATION_COMMAND interaction for one of the bot's commands, with the
    options its signature names but hostile values (of any type), in a guild or a DM,
    from anyone. (A name or option the bot never registered is a stale registration,
    the subject of a test of its own.)"""
    name = draw(st.sampled_from(sorted(SLASH_COMMAND_OPTIONS)))
    options = []
    for option, required in SLASH_COMMAND_OPTIONS[name]:
        if required or draw(st.booleans()):
            kind, value = draw(_OPTION_VALUES)
            options.append(_option(option, kind, value))
    person = draw(st.one_of(st.sampled_from([ALICE, BOB]), dc_users()))
    return dc_interaction(2, name, options, guild=draw(st.booleans()), person=person)


#: Each slash command's options: (name, required).
SLASH_COMMAND_OPTIONS: dict[str, tuple[tuple[str, bool], ...]] = {
    "chat": (("message", True),),
    "persona": (("id", False),),
    "link": (("code", True),),
    "forget": (("confirm", False),),
    "voice": (("state", False),),
    "personas": (),
    "reset": (),
    "retry": (),
    "unlink": (),
    "whoami": (),
    "help": (),
}
