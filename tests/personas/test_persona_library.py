"""PersonaLibrary: a directory of cards, in file-name order, with a default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.errors import PersonaError, UnknownPersona
from bot.personas import Persona, PersonaLibrary


def _toml(directory: Path, file_name: str, persona_id: str) -> Path:
    path = directory / file_name
    path.write_text(f'id = "{persona_id}"\nname = "{persona_id.title()}"\n', encoding="utf-8")
    return path


@pytest.fixture
def library_dir(
    tmp_path: Path,
    write_json: Callable[[str, object], Path],
    write_png: Callable[..., Path],
    v2_card: dict[str, Any],
    v3_card: dict[str, Any],
) -> Path:
    _toml(tmp_path, "b-bert.toml", "bert")
    _toml(tmp_path, "a-anna.toml", "anna")
    write_json("c-nell.json", v2_card)
    write_png("d-iris.png", {"ccv3": v3_card})
    (tmp_path / "README.md").write_text("not a card", encoding="utf-8")
    _toml(tmp_path, ".hidden.toml", "hidden")
    (tmp_path / "sub.toml").mkdir()
    return tmp_path


def test_loads_in_file_name_order(library_dir: Path) -> None:
    library = PersonaLibrary.from_directory(library_dir)
    assert [p.id for p in library] == ["anna", "bert", "keeper-nell", "captain-iris-vale"]
    assert len(library) == 4
    assert library.default.id == "anna"


def test_default_id(library_dir: Path) -> None:
    assert PersonaLibrary.from_directory(library_dir, default_id="bert").default.id == "bert"


def test_unknown_default_id(library_dir: Path) -> None:
    with pytest.raises(UnknownPersona, match="'nobody'"):
        PersonaLibrary.from_directory(library_dir, default_id="nobody")


def test_get_and_find(library_dir: Path) -> None:
    library = PersonaLibrary.from_directory(library_dir)
    assert library.get("bert").name == "Bert"
    assert library.find("bert") is library.get("bert")
    assert library.find("nobody") is None
    with pytest.raises(UnknownPersona) as caught:
        library.get("nobody")
    assert caught.value.persona_id == "nobody"


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    first = _toml(tmp_path, "one.toml", "same")
    second = _toml(tmp_path, "two.toml", "same")
    with pytest.raises(PersonaError) as caught:
        PersonaLibrary.from_directory(tmp_path)
    assert caught.value.field == "id"
    assert str(first) in str(caught.value)
    assert str(second) in str(caught.value)


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda d: None, id="empty"),
        pytest.param(lambda d: (d / "notes.txt").write_text("x", encoding="utf-8"), id="no-cards"),
    ],
)
def test_no_personas(tmp_path: Path, setup: Callable[[Path], object]) -> None:
    setup(tmp_path)
    with pytest.raises(PersonaError, match="no personas were found") as caught:
        PersonaLibrary.from_directory(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="cannot list personas"):
        PersonaLibrary.from_directory(tmp_path / "nowhere")


def test_a_bad_card_fails_the_library(tmp_path: Path) -> None:
    _toml(tmp_path, "a.toml", "anna")
    (tmp_path / "b.toml").write_text('id = "b"\nname = 3\n', encoding="utf-8")
    with pytest.raises(PersonaError, match=r"b\.toml"):
        PersonaLibrary.from_directory(tmp_path)


def test_constructor_takes_personas() -> None:
    library = PersonaLibrary([Persona(id="x", name="X"), Persona(id="y", name="Y")], "y")
    assert (library.default.id, len(library)) == ("y", 2)
    with pytest.raises(PersonaError, match="no personas"):
        PersonaLibrary([])
