"""``Figure``: one headline number of a benchmark, held against its goal, and the table.

Every bench prints its own detailed report and, with ``--json PATH``, writes its
headline figures to PATH (``-`` for stdout) as a JSON list of ``Figure`` fields.
``bench/all.py`` reads those files and prints one Markdown table of all of them.

Ratios read the same way for every goal: at 1.00 or more the goal is met. For a goal
where higher is better that is measured ÷ goal; where lower is better, goal ÷ measured.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

Direction = Literal["higher", "lower"]
_SYMBOL: dict[Direction, str] = {"higher": "≥", "lower": "≤"}


class FigureError(ValueError):
    """A bench wrote figures that are not a list of well-formed ``Figure`` objects."""


@dataclass(frozen=True)
class Figure:
    """``value`` in ``unit``; ``goal`` (same unit) is met when ``value`` is at least it
    (``better="higher"``) or at most it (``"lower"``). No goal: context for the others,
    such as the empty-handler ceiling the web figures are read against. ``note`` becomes
    a footnote under the table (where a goal comes from, what a figure counts)."""

    bench: str
    name: str
    value: float
    unit: str
    goal: float | None = None
    better: Direction = "higher"
    note: str = ""
    digits: int | None = None  # decimals to print; None: about three significant figures

    def __post_init__(self) -> None:
        if self.better not in _SYMBOL:
            raise FigureError(f"{self.name}: better must be 'higher' or 'lower'")

    @property
    def ratio(self) -> float | None:
        """At 1.00 or more the goal is met; None when there is no goal or no ratio (a
        goal or a measurement of zero, a measurement that is not a number)."""
        if self.goal is None or not math.isfinite(self.value):
            return None
        numerator, denominator = (
            (self.value, self.goal) if self.better == "higher" else (self.goal, self.value)
        )
        return numerator / denominator if numerator > 0 and denominator > 0 else None

    @property
    def met(self) -> bool | None:
        """None for a figure without a goal; a measurement that is not a number misses."""
        if self.goal is None:
            return None
        if not math.isfinite(self.value):
            return False
        return self.value >= self.goal if self.better == "higher" else self.value <= self.goal

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Figure:
        if not isinstance(data, dict):
            raise FigureError(f"a figure is a JSON object, not {data!r:.80}")
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise FigureError(f"unknown figure fields: {sorted(unknown)}")
        try:
            figure = cls(**data)
        except TypeError as exc:
            raise FigureError(f"incomplete figure {data!r:.200}: {exc}") from exc
        for name in ("bench", "name", "unit", "note"):
            if not isinstance(getattr(figure, name), str):
                raise FigureError(f"{name} must be a string in {data!r:.200}")
        for name in ("value", "goal", "digits"):
            number = getattr(figure, name)
            ok = number is None and name != "value"
            if not ok and (isinstance(number, bool) or not isinstance(number, int | float)):
                raise FigureError(f"{name} must be a number in {data!r:.200}")
        if figure.digits is not None and (figure.digits != int(figure.digits) or figure.digits < 0):
            raise FigureError(f"digits must be a whole number >= 0 in {data!r:.200}")
        return figure


# -- what a bench does with its figures ---------------------------------------------------


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the headline figures as JSON to PATH ('-' for stdout)",
    )


def emit(figures: Sequence[Figure], destination: str | None) -> None:
    """Write ``figures`` where ``--json`` asked (nowhere when it was not given)."""
    if destination is None:
        return
    text = json.dumps([figure.to_json() for figure in figures], indent=2) + "\n"
    if destination == "-":
        sys.stdout.write(text)
    else:
        Path(destination).write_text(text, encoding="utf-8")


def load(path: Path) -> list[Figure]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FigureError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, list):
        raise FigureError(f"{path}: expected a JSON list of figures")
    return [Figure.from_json(item) for item in data]


# -- the table -------------------------------------------------------------------------------


def number(value: float, digits: int | None = None) -> str:
    """``digits`` decimals, else about three significant figures; thousands separated."""
    if not math.isfinite(value):
        return str(value)
    if digits is None:
        size = abs(value)
        digits = 0 if size >= 100 else 1 if size >= 10 else 2
    return f"{value:,.{int(digits)}f}"


def _with_unit(value: float, figure: Figure) -> str:
    return f"{number(value, figure.digits)} {figure.unit}".rstrip()


def _cell(text: str) -> str:
    """One line (whatever breaks lines), its pipes escaped: a name cannot break a row."""
    return " ".join(text.splitlines()).replace("|", "\\|")


def _ratio(ratio: float) -> str:
    """Two decimals, but a missed goal never reads "1.00" (0.996 is "0.99"): the column
    reads 1.00 or more exactly when the goal is met."""
    text = f"{ratio:.2f}"
    return "0.99" if ratio < 1 and text == "1.00" else text


HEADER = (
    "| benchmark | figure | measured | goal | ratio to goal (≥ 1.00 meets it) | met? |",
    "|---|---|---:|---|---:|---|",
)


def table(figures: Iterable[Figure]) -> str:
    """The Markdown table, with each distinct note as a numbered footnote under it."""
    lines = list(HEADER)
    notes: list[str] = []
    for figure in figures:
        name = figure.name
        if figure.note:
            if figure.note not in notes:
                notes.append(figure.note)
            name += f" [{notes.index(figure.note) + 1}]"
        if figure.goal is None:
            goal, ratio, met = "—", "—", "(context)"
        else:
            goal = f"{_SYMBOL[figure.better]} {_with_unit(figure.goal, figure)}"
            ratio = "—" if figure.ratio is None else _ratio(figure.ratio)
            met = "yes" if figure.met else "**no**"
        cells = (figure.bench, name, _with_unit(figure.value, figure), goal, ratio, met)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    if notes:
        lines.append("")
        lines += [f"- [{n}] {_cell(note)}" for n, note in enumerate(notes, 1)]
    return "\n".join(lines)
