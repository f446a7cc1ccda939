"""Every name a setting can be given by must exist: a typo (``[wbe]``,
``PERSONABRIDGE_WBE__PORT``, ``colour = "blue"``) stops the start with a message naming
it and, when one is close, the setting that was probably meant, instead of being
silently ignored. Names are checked against the :class:`~bot.config.Settings` model
itself, so a new setting is known here by being declared there."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from bot.errors import ConfigError

#: Names read by ``load_settings`` itself, not settings of the model.
META_NAMES = frozenset({"CONFIG", "ENV_FILE"})


def _submodel(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    annotation = model.model_fields[name].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _closest(name: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(choices), n=1)
    return close[0] if close else None


def _hint(name: str, choices: Iterable[str]) -> str:
    close = _closest(name, choices)
    return f" (did you mean {close!r}?)" if close else ""


def unknown_path(model: type[BaseModel], path: Sequence[str]) -> tuple[int, str | None] | None:
    """Where ``path`` (lower-case names, outermost first) leaves ``model``: the index of
    the first unknown part and the closest known name there; None when all are known."""
    current: type[BaseModel] | None = model
    for index, part in enumerate(path):
        if current is None or part not in current.model_fields:
            return index, _closest(part, current.model_fields if current is not None else ())
        current = _submodel(current, part)
    return None


def check_environment_names(
    environ: Mapping[str, str | None], prefix: str, model: type[BaseModel], where: str = ""
) -> None:
    """Refuse ``PREFIX*`` names that are no setting (``where``: the file they came from)."""
    for key in environ:
        if not key.upper().startswith(prefix):
            continue
        rest = key[len(prefix) :].upper()
        if rest in META_NAMES:
            continue
        path = [part.lower() for part in rest.split("__")]
        found = unknown_path(model, path)
        if found is not None:
            index, close = found
            hint = ""
            if close is not None:
                meant = "__".join([*path[:index], close, *path[index + 1 :]]).upper()
                hint = f" (did you mean {prefix}{meant}?)"
            raise ConfigError(f"{where}{key.upper()}: unknown setting{hint}")


def check_file_names(values: Mapping[str, Any], model: type[BaseModel], file: str) -> None:
    """Refuse keys and sections of a TOML settings file that are no setting."""
    for key, value in values.items():
        if key not in model.model_fields:
            kind = "section" if isinstance(value, Mapping) else "key"
            label = f"[{key}]" if kind == "section" else key
            raise ConfigError(f"{file}: {label}: unknown {kind}{_hint(key, model.model_fields)}")
        sub = _submodel(model, key)
        if sub is None or not isinstance(value, Mapping):
            continue
        for inner in value:
            if inner not in sub.model_fields:
                raise ConfigError(
                    f"{file}: [{key}] {inner}: unknown key{_hint(inner, sub.model_fields)}"
                )


def file_location(loc: Sequence[int | str]) -> str:
    """A validation error's location as it is written in the TOML file."""
    names = [str(part) for part in loc if isinstance(part, str)]
    if len(names) > 1:
        return f"[{'.'.join(names[:-1])}] {names[-1]}"
    return names[0] if names else "?"
