"""``EventSplitter``: the events of a stream, every complete one of a read at once, the
same events the openai SDK's own decoder finds, however the bytes are cut into reads."""

from __future__ import annotations

import json

import pytest
from openai._streaming import SSEDecoder

from bot.backends.sse import Event, EventSplitter


def sdk_events(stream: bytes) -> list[Event]:
    """What the SDK's decoder makes of ``stream`` (read in one piece)."""
    return [(sse.event, sse.data) for sse in SSEDecoder().iter_bytes(iter([stream]))]


def split(reads: list[bytes]) -> tuple[list[Event], list[int]]:
    """The events of ``reads``, and how many each read completed."""
    splitter = EventSplitter()
    events: list[Event] = []
    counts: list[int] = []
    for read in reads:
        found = splitter.feed(read)
        events.extend(found)
        counts.append(len(found))
    return events, counts


def chunk(word: str) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": word}}]}
    return f"data: {json.dumps(body)}\n\n".encode()


STREAMS = {
    "words": b"".join(chunk(f"w{n} ") for n in range(5)) + b"data: [DONE]\n\n",
    "crlf": b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n',
    "cr": b'data: {"a": 1}\r\rdata: {"b": 2}\r\r',
    "mixed-line-ends": b"data: one\r\n\ndata: two\n\r\ndata: three\r\r",
    "comments-and-fields": (
        b": keep-alive\n\nid: 7\ndata: {}\n\nretry: 10\ndata: x\n\n: ping\ndata: y\n\n"
    ),
    "multi-line-data": b"data: first\ndata: second\ndata\ndata:third\n\n",
    "event-types": (
        b"event: thread.message\ndata: {}\n\nevent: error\ndata: {}\n\nevent:\ndata: z\n\n"
    ),
    "blank-line-runs": b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n\n",
    "no-space": b"data:tight\n\ndata:  two spaces\n\n",
    "unicode": 'data: {"c": "héllo wörld ✓ 日本"}\n\n'.encode(),
    "unfinished-end": b"data: done\n\ndata: never ended\n",
}


@pytest.mark.parametrize("stream", list(STREAMS.values()), ids=list(STREAMS))
def test_in_one_read_the_events_are_the_sdks(stream: bytes) -> None:
    assert split([stream])[0] == sdk_events(stream)


@pytest.mark.parametrize("stream", list(STREAMS.values()), ids=list(STREAMS))
def test_cut_anywhere_into_two_reads_the_events_are_the_same(stream: bytes) -> None:
    expected = sdk_events(stream)
    for cut in range(len(stream) + 1):
        assert split([stream[:cut], stream[cut:]])[0] == expected, cut


@pytest.mark.parametrize("stream", list(STREAMS.values()), ids=list(STREAMS))
def test_a_byte_at_a_time_the_events_are_the_same(stream: bytes) -> None:
    assert split([bytes([b]) for b in stream])[0] == sdk_events(stream)


def test_every_complete_event_of_a_read_comes_in_one_step() -> None:
    fifty = b"".join(chunk(f"w{n} ") for n in range(50))

    events, counts = split([fifty[:-30], fifty[-30:]])

    assert len(events) == 50 and counts == [49, 1]
    assert [json.loads(data)["choices"][0]["delta"]["content"] for _, data in events] == [
        f"w{n} " for n in range(50)
    ]


def test_an_event_with_no_data_line_is_no_event() -> None:
    # The SDK would hand these on with empty data, which its JSON reading refuses.
    assert split([b"retry: 3000\n\nevent: ping\n\nid: 4\n\ndata: {}\n\n"])[0] == [(None, "{}")]
