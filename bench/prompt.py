"""Prompt benchmark: what building one prompt costs, lorebook activation included.

Measures, in one process: lorebook activation for books of 50, 500 and 2,000 entries
(three one-word keys each, scanning four 60-word messages), and a whole chat-completion
prompt for a card with such a book and a 40-turn window. Both run for every reply of a
persona on a prompt-taking backend (off the event loop, in a thread).

Run: ``.venv/bin/python bench/prompt.py`` (``--quick`` for a smoke run). Not a test: it
prints figures.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.backends.prompt import chat_messages
from bot.card_model import Lorebook, LoreEntry
from bot.lorebook import ScanInput, activate
from bot.messages import Turn
from bot.personas import Persona

WORDS = [f"word{i}" for i in range(5000)]


def book(entries: int, rng: random.Random) -> Lorebook:
    return Lorebook(
        entries=tuple(
            LoreEntry(
                keys=tuple(rng.sample(WORDS, 3)),
                content=" ".join(rng.sample(WORDS, 40)),
                insertion_order=rng.randint(0, 200),
            )
            for _ in range(entries)
        ),
        scan_depth=4,
    )


def per_call_ms(call: Callable[[], object], runs: int) -> float:
    call()  # warm the caches a long-lived process has warm
    started = time.perf_counter()
    for _ in range(runs):
        call()
    return (time.perf_counter() - started) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few runs only")
    runs = 3 if parser.parse_args().quick else 50
    rng = random.Random(1)
    messages = [" ".join(rng.sample(WORDS, 60)) for _ in range(4)]
    for size in (50, 500, 2000):
        lore = book(size, rng)
        scan = ScanInput(messages)
        cost = per_call_ms(partial(activate, lore, scan, budget_tokens=2048), runs)
        print(f"activation, {size:5d} entries: {cost:7.2f} ms")
    persona = Persona(id="bench", name="Bench", description="A card.", lorebook=book(500, rng))
    window = [
        Turn(i, "user" if i % 2 else "assistant", " ".join(rng.sample(WORDS, 30)), "Sam", 0.0)
        for i in range(40)
    ]
    message = Turn(41, "user", messages[-1], "Sam", 0.0)
    cost = per_call_ms(lambda: chat_messages(persona, window, message), runs)
    print(f"whole prompt, 500-entry book, 40-turn window: {cost:7.2f} ms")


if __name__ == "__main__":
    main()
